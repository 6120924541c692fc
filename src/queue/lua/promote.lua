-- Move one job whose time has come (a retry after its backoff, or a job
-- submitted with a later run_at) from the scheduled set to waiting. Live
-- workers find the due ones (ZRANGEBYSCORE) about once a second and call
-- this for each.
-- KEYS[1] scheduled zset, KEYS[2] queue, KEYS[3] job hash
-- ARGV[1] id, ARGV[2] now (ms), ARGV[3] events channel, ARGV[4] publish
-- command (lib.lua's stratq_publish), ARGV[5] base
-- Returns 1 when promoted, 0 when it was no longer due or scheduled.
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[3], 'status') ~= 'scheduled' then
  return 0
end
-- Its wait (the queue-wait histogram) counts from now, not from when it
-- was submitted.
redis.call('HSET', KEYS[3], 'status', 'queued', 'ready_ms', ARGV[2])
redis.call('HDEL', KEYS[3], 'next_run_ms')
stratq_wait_again(ARGV[5], KEYS[2], ARGV[1], KEYS[3])
stratq_publish(ARGV[4], ARGV[3], cjson.encode({id = ARGV[1], status = 'queued'}))
return 1
