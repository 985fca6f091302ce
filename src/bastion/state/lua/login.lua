-- Bastion: record one failed login (mirrors bastion/ratelimit/backoff.py next_failure).
-- KEYS[1] "<failures> <last_failure>"; ARGV: now (s), reset_after (s), lockout_after,
-- lockout_duration (s). Returns the new failure count.
local now, reset_after = tonumber(ARGV[1]), tonumber(ARGV[2])
local lockout_after, lockout_duration = tonumber(ARGV[3]), tonumber(ARGV[4])
local failures = 0
local raw = redis.call('GET', KEYS[1])
if raw then
  local f, l = string.match(raw, '^(%d+) (%S+)$')
  f, l = tonumber(f), tonumber(l)
  if f and l then
    local keep = reset_after
    if f >= lockout_after and lockout_duration > keep then keep = lockout_duration end
    if now - l <= keep then failures = f end
  end
end
failures = failures + 1
local keep = reset_after
if lockout_duration > keep then keep = lockout_duration end
redis.call('SET', KEYS[1], string.format('%d %.6f', failures, now), 'PX', math.ceil(keep * 1000))
return failures
