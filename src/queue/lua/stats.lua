-- Counts for GET /v1/queue.
-- KEYS[1] queue, KEYS[2] workers zset, KEYS[3] scheduled zset, KEYS[4] dead zset
-- ARGV[1] prefix of processing lists ("stratq:processing:")
-- Returns {pending, processing, scheduled, dead, workers}.
-- The processing lists are named from the workers zset, so this script
-- reads keys it was not given; it needs a single Redis, not a cluster.
local processing = 0
local workers = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, w in ipairs(workers) do
  processing = processing + redis.call('LLEN', ARGV[1] .. w)
end
return {redis.call('LLEN', KEYS[1]), processing, redis.call('ZCARD', KEYS[3]),
        redis.call('ZCARD', KEYS[4]), #workers}
