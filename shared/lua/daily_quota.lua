-- Daily quota on the Redis clock (UTC days). KEYS[1] is the quota's key prefix, ARGV[1] the
-- quota. Takes one unit from today's count; returns {allowed, seconds_until_tomorrow}.
local quota = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1])
local day = math.floor(now / 86400)
local left = (day + 1) * 86400 - now
local key = KEYS[1] .. ':' .. day
local used = tonumber(redis.call('GET', key) or '0')
if used >= quota then
  return {0, left}
end
redis.call('INCR', key)
redis.call('EXPIRE', key, left + 3600)
return {1, 0}
