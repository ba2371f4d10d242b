-- Stage many jobs of one lane: ZADD KEYS[1] score1 id1 score2 id2 ...; if the lane's earliest
-- member is now one of them, publish its due time on KEYS[2] so sleeping executors wake early.
-- One call instead of one `stage` per job (the API's batches, the window check).
local before = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
redis.call('ZADD', KEYS[1], unpack(ARGV))
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if head[1] ~= before[1] or head[2] ~= before[2] then
  redis.call('PUBLISH', KEYS[2], head[2])
end
return #ARGV / 2
