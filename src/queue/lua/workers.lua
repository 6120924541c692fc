-- The registered workers' hashes, for GET /v1/workers. The caller reads the
-- workers zset first (ZRANGE) and names each worker's hash.
-- KEYS[1] workers zset, KEYS[2..] the workers' hashes. ARGV the workers'
-- ids, in the order of KEYS[2..].
-- Returns a flat array: id, last heartbeat (ms), {field, value, ...} for
-- each worker still registered.
local out = {}
for i, id in ipairs(ARGV) do
  local beat = redis.call('ZSCORE', KEYS[1], id)
  if beat then
    out[#out + 1] = id
    out[#out + 1] = beat
    out[#out + 1] = redis.call('HGETALL', KEYS[i + 1])
  end
end
return out
