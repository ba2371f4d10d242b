-- Take each free lock of KEYS: SET NX PX with its token ARGV[2i-1] and ttl in ms ARGV[2i].
-- One call for a batch of job locks instead of one SET per lock; 1 where taken, else 0.
local taken = {}
for i, key in ipairs(KEYS) do
  taken[i] = redis.call('SET', key, ARGV[2 * i - 1], 'NX', 'PX', ARGV[2 * i]) and 1 or 0
end
return taken
