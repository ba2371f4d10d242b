-- Daily quota on the Redis clock (UTC days). KEYS[1] is the quota's hash (today's day number
-- and the units used on it), ARGV[1] the quota. Takes one unit from today's count; returns
-- {allowed, seconds_until_tomorrow}. The day is a field, not part of the key's name, so the
-- script touches only the key it declares (Redis Cluster routes and checks on KEYS).
local quota = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1])
local day = math.floor(now / 86400)
local left = (day + 1) * 86400 - now
local stored = redis.call('HMGET', KEYS[1], 'day', 'used')
local used = 0
if tonumber(stored[1]) == day then
  used = tonumber(stored[2]) or 0
end
if used >= quota then
  return {0, left}
end
redis.call('HSET', KEYS[1], 'day', day, 'used', used + 1)
redis.call('EXPIRE', KEYS[1], left + 3600)
return {1, 0}
