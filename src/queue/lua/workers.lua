-- Every registered worker's hash, for GET /v1/workers.
-- KEYS[1] workers zset. ARGV[1] worker key prefix ("stratq:worker:").
-- Returns a flat array: id, last heartbeat (ms), {field, value, ...}.
local out = {}
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do
  out[#out + 1] = members[i]
  out[#out + 1] = members[i + 1]
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. members[i])
end
return out
