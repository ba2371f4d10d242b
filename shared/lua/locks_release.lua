-- Delete each lock of KEYS still held with its token ARGV[i] (redis-py's compare-and-delete, for
-- a batch); a lock already expired or another's is left alone. Returns how many were deleted.
local released = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then
    redis.call('DEL', key)
    released = released + 1
  end
end
return released
