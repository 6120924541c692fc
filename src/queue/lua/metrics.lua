-- Everything GET /metrics shows, in one round trip.
-- KEYS[1] queue, KEYS[2] workers zset, KEYS[3] scheduled zset,
-- KEYS[4] dead zset, KEYS[5] stats hash. ARGV[1] processing list prefix.
-- Returns {pending, processing, scheduled, dead, workers, {bucket bounds as
-- strings}, {stats hash field, value, ...}}.
local processing = 0
local workers = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, w in ipairs(workers) do
  processing = processing + redis.call('LLEN', ARGV[1] .. w)
end
local bounds = {}
for i, le in ipairs(stratq_buckets) do
  bounds[i] = tostring(le)
end
return {redis.call('LLEN', KEYS[1]), processing, redis.call('ZCARD', KEYS[3]),
        redis.call('ZCARD', KEYS[4]), #workers, bounds, redis.call('HGETALL', KEYS[5])}
