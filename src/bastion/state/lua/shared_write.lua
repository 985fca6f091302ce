-- Bastion: change one shared set, bump its version and publish the change, atomically.
-- KEYS[1] version; KEYS[2] target (revoked zset | not-before hash | blocks hash)
-- ARGV[1] op; ARGV[2] channel; ARGV[3] payload (JSON, published); ARGV[4..] op arguments
--   revoke_token   ARGV[4] jti, ARGV[5] expires_at, ARGV[6] grace (seconds)
--                  (entries expired more than `grace` ago by Redis' clock are pruned)
--   revoke_subject ARGV[4] subject, ARGV[5] not_before            (only ever moves forward)
--   block          ARGV[4] field, ARGV[5] entry JSON
--                  (never shortens an active block: a permanent or later one stays)
--   unblock        ARGV[4] field
--   unblock_if     ARGV[4] field, ARGV[5] expected JSON, ARGV[6] until, ARGV[7] grace
--                  (prune a block that lapsed more than `grace` ago by Redis' clock, no publish)
-- Pruning goes by Redis' clock, never the caller's: a gateway whose clock runs ahead must not
-- remove revocations and blocks that every other gateway still enforces.
-- Publishes "<version> <payload>"; returns the new version.
local op = ARGV[1]
local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
if op == 'unblock_if' then
  if redis.call('HGET', KEYS[2], ARGV[4]) == ARGV[5]
      and tonumber(ARGV[6]) < server_now() - tonumber(ARGV[7]) then
    redis.call('HDEL', KEYS[2], ARGV[4])
  end
  return redis.call('GET', KEYS[1])
end
if op == 'revoke_token' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (server_now() - tonumber(ARGV[6])))
  redis.call('ZADD', KEYS[2], 'GT', ARGV[5], ARGV[4])
  redis.call('ZADD', KEYS[2], 'NX', ARGV[5], ARGV[4])
elseif op == 'revoke_subject' then
  local current = tonumber(redis.call('HGET', KEYS[2], ARGV[4]))
  if current == nil or tonumber(ARGV[5]) > current then
    redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
  end
elseif op == 'block' then
  local keep = false
  local current = redis.call('HGET', KEYS[2], ARGV[4])
  if current then
    local ok, old = pcall(cjson.decode, current)
    if ok and type(old) == 'table' then
      local old_until = tonumber(old['until'])
      local new_until = tonumber(cjson.decode(ARGV[5])['until'])
      if old_until == nil then
        keep = true
      elseif old_until > server_now() and new_until ~= nil and old_until > new_until then
        keep = true
      end
    end
  end
  if not keep then
    redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
  end
elseif op == 'unblock' then
  redis.call('HDEL', KEYS[2], ARGV[4])
else
  return redis.error_reply('unknown op')
end
local version = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[2], version .. ' ' .. ARGV[3])
return version
