-- Re-enqueue a job that ended without success, as a new attempt.
-- KEYS[1] job hash, KEYS[2] queue list, KEYS[3] dead zset
-- ARGV[1] id, ARGV[2] now (ms), ARGV[3] events channel, ARGV[4] publish
-- command (lib.lua's stratq_publish), ARGV[5] base
-- Returns {"queued", attempts so far}, {"conflict", status} for a job whose
-- status is not retryable (waiting, running or succeeded), {"missing"} for
-- an unknown id. Its entry in its old status's index is left for list.lua
-- to drop (it lists a job only under its current status).
local f = redis.call('HMGET', KEYS[1], 'status', 'attempts')
local status = f[1]
if not status then
  return {'missing'}
end
if not stratq_is(status, 'retryable') then
  return {'conflict', status}
end
-- A retry starts the job's budgets afresh: max_attempts and the
-- worker-lost cap count from here.
redis.call('HDEL', KEYS[1], 'finished_ms', 'result', 'error', 'stdout', 'stderr', 'usage',
           'cancel_requested_ms', 'started_ms', 'failures', 'lost', 'dead_reason',
           'last_status', 'next_run_ms', 'ready_ms')
-- Its wait counts from the retry.
redis.call('HSET', KEYS[1], 'ready_ms', ARGV[2])
redis.call('HSET', KEYS[1], 'status', 'queued', 'retried_ms', ARGV[2])
redis.call('PERSIST', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
stratq_wait_again(ARGV[5], KEYS[2], ARGV[1], KEYS[1])
stratq_publish(ARGV[4], ARGV[3], cjson.encode({id = ARGV[1], status = 'queued'}))
return {'queued', tonumber(f[2] or '0')}
