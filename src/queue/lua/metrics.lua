-- Everything GET /metrics shows, in one script. The caller reads the
-- workers zset first (ZRANGE) and names each worker's processing list.
-- KEYS[1] queue, KEYS[2] workers zset, KEYS[3] scheduled zset,
-- KEYS[4] dead zset, KEYS[5] stats hash, KEYS[6..] the workers' processing
-- lists.
-- Returns {pending, processing, scheduled, dead, workers, {bucket bounds as
-- strings}, {stats hash field, value, ...}}.
local processing = 0
for i = 6, #KEYS do
  processing = processing + redis.call('LLEN', KEYS[i])
end
local bounds = {}
for i, le in ipairs(stratq_buckets) do
  bounds[i] = tostring(le)
end
return {redis.call('LLEN', KEYS[1]), processing, redis.call('ZCARD', KEYS[3]),
        redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[2]), bounds,
        redis.call('HGETALL', KEYS[5])}
