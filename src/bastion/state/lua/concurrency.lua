-- Bastion: acquire one concurrency lease (sorted set: member = lease id, score = expiry us).
-- KEYS[1] lease set; ARGV[1] 'server' or now_us; ARGV[2] limit; ARGV[3] lease id; ARGV[4] ttl_us
-- Expired leases (a crashed gateway's) are dropped first. Returns 1 when admitted, else 0.
local now
if ARGV[1] == 'server' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local key, ttl = KEYS[1], tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZSCORE', key, ARGV[3]) or redis.call('ZCARD', key) < tonumber(ARGV[2]) then
  redis.call('ZADD', key, string.format('%.0f', now + ttl), ARGV[3])
  -- The set outlives its newest lease by a grace (leases expire by score, not by TTL).
  local ms = math.ceil(ttl / 1000) + 30000
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
  return 1
end
return 0
