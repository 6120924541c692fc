-- The fair-share state, for GET /v1/queue and GET /v1/tenants.
-- KEYS[1] queue
-- ARGV[1] base
-- Returns {waiting, parked, {paused tenants, "*" for the queue}, {tenant,
-- waiting, running, weight, cap, ...}}: every tenant that ever had a job
-- wait, 5 entries each.
local base = ARGV[1]
return {stratq_fair_waiting(base),
        redis.call('LLEN', stratq_fk(base, 'parked')),
        redis.call('SMEMBERS', stratq_fk(base, 'paused')), stratq_fair_tenants(base, true)}
