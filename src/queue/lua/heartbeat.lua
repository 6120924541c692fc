-- Register or refresh a worker, and add what it counted since its last
-- heartbeat to the stats hash (its jobs by outcome, its histograms).
-- KEYS[1] workers zset, KEYS[2] worker hash, KEYS[3] stats hash
-- ARGV[1] worker id, ARGV[2] now (ms), ARGV[3] hash TTL (ms), ARGV[4] the
-- number n of stats pairs, then n stats field/increment pairs (a field
-- ending in ":sum" takes a float), then field/value pairs for the worker
-- hash.
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local n = tonumber(ARGV[4])
for i = 5, 4 + 2 * n, 2 do
  if string.sub(ARGV[i], -4) == ':sum' then
    redis.call('HINCRBYFLOAT', KEYS[3], ARGV[i], ARGV[i + 1])
  else
    redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
  end
end
local fields = {'last_heartbeat_ms', ARGV[2]}
for i = 5 + 2 * n, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
stratq_hset(KEYS[2], fields)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
