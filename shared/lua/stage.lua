-- Stage one job: ZADD KEYS[1] ARGV[1] ARGV[2]; if it is now the earliest member of its lane,
-- publish its due time on KEYS[2] so sleeping executors wake up early.
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local head = redis.call('ZRANGE', KEYS[1], 0, 0)
if head[1] == ARGV[2] then
  redis.call('PUBLISH', KEYS[2], ARGV[1])
end
return 1
