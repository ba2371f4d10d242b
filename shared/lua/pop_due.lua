-- Pop up to ARGV[1] members due within ARGV[2] ms from now, lanes in KEYS order (high first),
-- using the Redis clock so every node agrees on "due".
-- Returns {now_ms, earliest_remaining_ms_or_-1, id1, id2, ...}.
local limit = tonumber(ARGV[1])
local lead = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {now, -1}
for _, key in ipairs(KEYS) do
  local room = limit - (#out - 2)
  if room <= 0 then break end
  local ids = redis.call('ZRANGEBYSCORE', key, '-inf', now + lead, 'LIMIT', 0, room)
  if #ids > 0 then
    redis.call('ZREM', key, unpack(ids))
    for _, id in ipairs(ids) do out[#out + 1] = id end
  end
end
for _, key in ipairs(KEYS) do
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #head == 2 then
    local score = tonumber(head[2])
    if out[2] == -1 or score < out[2] then out[2] = score end
  end
end
return out
