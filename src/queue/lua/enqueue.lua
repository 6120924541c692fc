-- Enqueue a new job: create its hash, make it wait (in its tenant's
-- backlog with a ticket on the queue, or, with no tenant, as its id on the
-- queue) or, with a later run_at, schedule it, and list it in the `all`
-- index (lib.lua's stratq_enqueue).
-- KEYS[1] job hash, KEYS[2] queue list, KEYS[3] index:all, KEYS[4]
-- scheduled zset, KEYS[5] index:scheduled
-- ARGV[1] id, ARGV[2] spec JSON, ARGV[3] now (ms), ARGV[4] events channel,
-- ARGV[5] publish command (lib.lua's stratq_publish), ARGV[6] "1" when the
-- id came from the client (it may exist already), "0" for an id the API
-- made (128 random bits: it cannot), ARGV[7] tenant ("" for none: the job
-- skips fair share), ARGV[8] priority 0-9, ARGV[9] when to run it (ms; 0
-- or past: now), ARGV[10] base
-- Returns {1, "queued" or "scheduled"} when created, {0, <status>,
-- <tenant or nil>} when the id exists (the existing job is left untouched:
-- enqueue is idempotent per id; its tenant tells the API whether the
-- submitter's token may see it).
if ARGV[6] == '1' and redis.call('HSETNX', KEYS[1], 'status', 'queued') == 0 then
  local f = redis.call('HMGET', KEYS[1], 'status', 'tenant')
  return {0, f[1], f[2]}
end
local status = stratq_enqueue(
  {job = KEYS[1], queue = KEYS[2], all = KEYS[3], scheduled = KEYS[4], sched_index = KEYS[5]},
  {id = ARGV[1], spec = ARGV[2], now = ARGV[3], events = ARGV[4], publish = ARGV[5],
   tenant = ARGV[7], priority = ARGV[8], run_at = ARGV[9], base = ARGV[10]}, {})
return {1, status}
