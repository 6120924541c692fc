-- Start a job a worker has just moved (BLMOVE) into its processing list.
-- KEYS[1] job hash, KEYS[2] the worker's processing list, KEYS[3] the
-- worker's hash (marked busy with this job, if it exists)
-- ARGV[1] id, ARGV[2] worker id, ARGV[3] now (ms), ARGV[4] events channel,
-- ARGV[5] key prefix, ARGV[6] index size limit
-- Returns {"run", attempt, spec, failures so far}; {"missing"} when no job hash exists;
-- {"skip", status} when the job is no longer queued (e.g. cancelled).
-- In the last two cases the id is removed from the processing list.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  redis.call('LREM', KEYS[2], 1, ARGV[1])
  return {'missing'}
end
-- The same worker asking again (its first call's reply was lost with the
-- connection) gets the same answer, so the job is not stranded.
if status == 'running' and redis.call('HGET', KEYS[1], 'worker') == ARGV[2] then
  return {'run', tonumber(redis.call('HGET', KEYS[1], 'attempts')),
          redis.call('HGET', KEYS[1], 'spec') or '',
          tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')}
end
if status ~= 'queued' then
  redis.call('LREM', KEYS[2], 1, ARGV[1])
  return {'skip', status}
end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'state', 'busy', 'current_job', ARGV[1])
end
redis.call('HDEL', KEYS[1], 'finished_ms', 'result', 'error', 'stdout', 'stderr', 'usage',
           'cancel_requested_ms', 'next_run_ms')
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[2], 'started_ms', ARGV[3])
-- Progress is the running attempt's own.
redis.call('HDEL', KEYS[1], 'progress')
stratq_index(ARGV[5], ARGV[1], 'queued', 'running', ARGV[3], tonumber(ARGV[6]))
local created = tonumber(redis.call('HGET', KEYS[1], 'created_ms'))
if created then
  stratq_observe(ARGV[5] .. ':stats', 'queue_wait', math.max(0, tonumber(ARGV[3]) - created) / 1000)
end
redis.call('PUBLISH', ARGV[4], cjson.encode({id = ARGV[1], status = 'running',
                                             worker = ARGV[2], attempt = attempt}))
return {'run', attempt, redis.call('HGET', KEYS[1], 'spec') or '',
        tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')}
