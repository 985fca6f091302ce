-- Bastion: all-or-nothing evaluation of N rate-limit checks in one atomic script.
-- The arithmetic mirrors bastion/ratelimit/{gcra,sliding_window,calendar}.py, in microseconds.
--
-- KEYS[i]   state key of check i (all keys share one hash tag: one Redis Cluster slot)
-- ARGV[1]   'server' (use redis TIME: one clock for every gateway) or the caller's now (us)
-- ARGV[2 + 5*(i-1) ...]  algorithm ('g' gcra, 's' sliding window, 'd' day quota,
--                        'm' month quota), limit, period_us, burst, cost
-- Returns { admitted (0/1), binding check (1-based, 0 when admitted), now_us,
--           per check: allowed (0/1), remaining, reset_after_us, retry_after_us }
-- A refused request writes nothing: refused requests do not consume quota.

local now
if ARGV[1] == 'server' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end

local function units(x)
  local v = math.floor(x + 1e-6)
  if v < 0 then return 0 end
  return v
end

local function gcra(raw, limit, period, burst, cost)
  -- EPS: 1 us tolerance, above the float resolution of epoch microseconds (0.25 us).
  local EPS = 1
  local interval = period / limit
  local tolerance = interval * burst
  local base = now
  local tat = tonumber(raw)
  if tat and tat > now then base = tat end
  local new_tat = base + cost * interval
  local allow_at = new_tat - tolerance
  if allow_at > now + EPS then
    local left = math.floor((now + EPS - (base - tolerance)) / interval)
    if left > burst then left = burst end
    if left < 0 then left = 0 end
    return 0, left, base - now, allow_at - now, nil, 0
  end
  local left = math.floor((now + EPS - allow_at) / interval)
  -- never more than a full bucket holds (EPS adds EPS / interval units at high rates)
  if left > burst - cost then left = burst - cost end
  if left < 0 then left = 0 end
  return 1, left, new_tat - now, 0, string.format('%.17g', new_tat), new_tat - now
end

local function sliding(raw, limit, period, cost)
  local index = math.floor(now / period)
  local current, previous = 0, 0
  if raw then
    local si, sc, sp = string.match(raw, '^(%-?%d+) (%d+) (%d+)$')
    si = tonumber(si)
    if si == index then
      current, previous = tonumber(sc), tonumber(sp)
    elseif si == index - 1 then
      previous = tonumber(sc)
    end
  end
  local start = index * period
  local weight = 1 - (now - start) / period
  local estimate = previous * weight + current
  local ttl = start + 2 * period - now
  local function reset(c, p)
    if c > 0 then return start + 2 * period - now end
    if p > 0 then return start + period - now end
    return 0
  end
  if estimate + cost <= limit + 1e-9 then
    local nc = current + cost
    return 1, units(limit - (previous * weight + nc)), reset(nc, previous), 0,
      string.format('%.0f %d %d', index, nc, previous), ttl
  end
  local at
  local room = limit - cost - current
  if previous > 0 and room >= 0 then
    at = start + (1 - room / previous) * period
  else
    room = limit - cost
    at = start + period
    if current > room then at = at + (1 - room / current) * period end
  end
  local retry = at - now
  if retry < 0 then retry = 0 end
  return 0, units(limit - estimate), reset(current, previous), retry, nil, ttl
end

-- H. Hinnant's civil calendar algorithms (proleptic Gregorian, days since 1970-01-01).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m + 9
  if m > 2 then mp = m - 3 end
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp - 9
  if mp < 10 then m = mp + 3 end
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m
end

local function quota(raw, alg, limit, cost)
  local days = math.floor(now / 86400000000)
  local s, e
  if alg == 'd' then
    s, e = days * 86400, (days + 1) * 86400
  else
    local y, m = civil_from_days(days)
    local ny, nm = y, m + 1
    if m == 12 then ny, nm = y + 1, 1 end
    s, e = days_from_civil(y, m, 1) * 86400, days_from_civil(ny, nm, 1) * 86400
  end
  local count = 0
  if raw then
    local ss, sc = string.match(raw, '^(%-?%d+) (%d+)$')
    if tonumber(ss) == s then count = tonumber(sc) end
  end
  local until_end = e * 1000000 - now
  if count + cost <= limit then
    return 1, limit - count - cost, until_end, 0, string.format('%.0f %d', s, count + cost),
      until_end
  end
  local left = limit - count
  if left < 0 then left = 0 end
  return 0, left, until_end, until_end, nil, until_end
end

local function run(alg, raw, limit, period, burst, cost)
  if alg == 'g' then return gcra(raw, limit, period, burst, cost) end
  if alg == 's' then return sliding(raw, limit, period, cost) end
  return quota(raw, alg, limit, cost)
end

local n = #KEYS
local original, tentative = {}, {}
local steps = {}
local writes, order = {}, {}
local binding, binding_retry = 0, -1
for i = 1, n do
  local key = KEYS[i]
  local b = 2 + (i - 1) * 5
  local alg, limit, period = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local burst, cost = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  if original[key] == nil then
    original[key] = redis.call('GET', key)
  end
  local raw = tentative[key]
  if raw == nil then raw = original[key] end
  if raw == false then raw = nil end
  local ok, remaining, reset, retry, state, ttl = run(alg, raw, limit, period, burst, cost)
  steps[i] = { ok, remaining, reset, retry }
  if ok == 1 then
    tentative[key] = state
    if writes[key] == nil then order[#order + 1] = key end
    writes[key] = { state, ttl }
  elseif retry > binding_retry then
    binding, binding_retry = i, retry
  end
end

local out = { 1, 0, now }
if binding > 0 then
  out[1], out[2] = 0, binding
  for i = 1, n do
    if steps[i][1] == 1 then
      local b = 2 + (i - 1) * 5
      local raw = original[KEYS[i]]
      if raw == false then raw = nil end
      local _, remaining, reset = run(ARGV[b], raw, tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]),
        tonumber(ARGV[b + 3]), 0)
      steps[i] = { 1, remaining, reset, 0 }
    end
  end
else
  -- Keys expire once their state means nothing more than an absent key, plus a grace:
  -- 1 s with the server clock; 30 s with caller clocks, whose "now" may lag real time
  -- (skewed gateways, frozen test clocks) while Redis expires keys in real time.
  local grace = 30000
  if ARGV[1] == 'server' then grace = 1000 end
  for _, key in ipairs(order) do
    local w = writes[key]
    local ms = math.ceil(w[2] / 1000)
    if ms >= 1 then redis.call('SET', key, w[1], 'PX', ms + grace) end
  end
end
for i = 1, n do
  local s = steps[i]
  out[#out + 1] = s[1]
  out[#out + 1] = s[2]
  out[#out + 1] = math.floor(s[3])
  out[#out + 1] = math.floor(s[4] + 0.999)
end
return out
