-- Everything GET /metrics and GET /v1/queue show, in one script. The
-- caller reads the workers zset first (ZRANGE) and names each worker's
-- processing list.
-- KEYS[1] queue, KEYS[2] workers zset, KEYS[3] scheduled zset,
-- KEYS[4] dead zset, KEYS[5] stats hash, KEYS[6..] the workers' processing
-- lists.
-- ARGV[1] base
-- Returns {pending, processing, scheduled, dead, workers, {bucket bounds as
-- strings}, {stats hash field, value, ...}, waiting, held, {paused},
-- {tenant, waiting, running, ...}}:
-- pending is the queue list's length (what workers can take now), waiting
-- the jobs in the tenants' backlogs (lib.lua), held the parked entries
-- (jobs waiting for a tenant's cap or a pause), paused the paused tenants
-- ("*": the queue), and, for every tenant that ever had a job wait, its
-- jobs in its backlog and its jobs running (counted for fair share).
local processing = 0
for i = 6, #KEYS do
  processing = processing + redis.call('LLEN', KEYS[i])
end
local bounds = {}
for i, le in ipairs(stratq_buckets) do
  bounds[i] = tostring(le)
end
local base = ARGV[1]
return {redis.call('LLEN', KEYS[1]), processing, redis.call('ZCARD', KEYS[3]),
        redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[2]), bounds,
        redis.call('HGETALL', KEYS[5]),
        stratq_fair_waiting(base),
        redis.call('LLEN', stratq_fk(base, 'parked')),
        redis.call('SMEMBERS', stratq_fk(base, 'paused')), stratq_fair_tenants(base, false)}
