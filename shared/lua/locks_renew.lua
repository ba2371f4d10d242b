-- Push forward each lock of KEYS still held with its token ARGV[2i-1] by ARGV[2i] ms (redis-py's
-- compare-and-pexpire, for a batch); 1 where renewed, 0 where the key is gone or another's.
local renewed = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[2 * i - 1] then
    redis.call('PEXPIRE', key, ARGV[2 * i])
    renewed[i] = 1
  else
    renewed[i] = 0
  end
end
return renewed
