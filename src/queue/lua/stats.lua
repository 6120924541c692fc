-- Counts for GET /v1/queue. The caller reads the workers zset first
-- (ZRANGE) and names each worker's processing list.
-- KEYS[1] queue, KEYS[2] workers zset, KEYS[3] scheduled zset, KEYS[4] dead
-- zset, KEYS[5..] the workers' processing lists
-- Returns {pending, processing, scheduled, dead, workers}.
local processing = 0
for i = 5, #KEYS do
  processing = processing + redis.call('LLEN', KEYS[i])
end
return {redis.call('LLEN', KEYS[1]), processing, redis.call('ZCARD', KEYS[3]),
        redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[2])}
