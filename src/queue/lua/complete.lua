-- Record a job's outcome, fenced on (worker, attempt): the result is
-- written only if the job is still in this worker's processing list, still
-- running, and still on the attempt this worker started. A worker whose job
-- was reaped and re-run elsewhere therefore never overwrites the result.
-- KEYS[1] job hash, KEYS[2] the worker's processing list, KEYS[3] the
-- worker's hash (marked idle and its counters kept, if it exists)
-- ARGV[1] id, ARGV[2] worker id, ARGV[3] attempt, ARGV[4] now (ms),
-- ARGV[5] events channel, ARGV[6] TTL in seconds of a succeeded job's record,
-- ARGV[7] TTL of any other outcome (0: keep), ARGV[8] key prefix,
-- ARGV[9] index size limit, ARGV[10] the job's max_attempts, ARGV[11] when
-- to run it again (ms) if this outcome is retried, ARGV[12] status, then
-- field/value pairs (result, error, stdout, ...).
-- A run whose status is auto_retry (failed, timed out or crashed) of a job
-- with attempts left is not final: the job becomes "scheduled" until
-- ARGV[11]; one with none left becomes "dead". Runs ended by a lost worker
-- or a drain never get here and so never count against max_attempts.
-- Returns 1 when recorded, 0 when fenced off, 2 when this very outcome was
-- recorded already (the worker's first call went through but its reply was
-- lost with the connection).
local listed = redis.call('LPOS', KEYS[2], ARGV[1])
local fields = redis.call('HMGET', KEYS[1], 'status', 'worker', 'attempts', 'started_ms')
if not listed and fields[1] ~= 'running' and fields[2] == ARGV[2] and fields[3] == ARGV[3] then
  return 2
end
if not listed or fields[1] ~= 'running' or fields[2] ~= ARGV[2] or fields[3] ~= ARGV[3] then
  -- A stale entry of ours for a job now run by another worker is dropped;
  -- so is one for a job no longer running; an entry for our own running
  -- attempt is left alone.
  if listed and (fields[2] ~= ARGV[2] or fields[1] ~= 'running') then
    redis.call('LREM', KEYS[2], 1, ARGV[1])
  end
  return 0
end
local status = ARGV[12]
redis.call('LREM', KEYS[2], 1, ARGV[1])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'state', 'idle', 'current_job', '')
  redis.call('HINCRBY', KEYS[3], status == 'succeeded' and 'jobs_done' or 'jobs_failed', 1)
end
for i = 13, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
-- The live output of the running job is now in the hash.
redis.call('DEL', KEYS[1] .. ':stdout', KEYS[1] .. ':stderr')
local stats = ARGV[8] .. ':stats'
if fields[4] then
  stratq_observe(stats, 'duration', math.max(0, tonumber(ARGV[4]) - tonumber(fields[4])) / 1000)
end
local max_attempts = tonumber(ARGV[10])
if stratq_is(status, 'auto_retry') and max_attempts > 1 then
  local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  if failures < max_attempts then
    redis.call('HSET', KEYS[1], 'status', 'scheduled', 'next_run_ms', ARGV[11], 'last_status',
               status, 'finished_ms', ARGV[4])
    redis.call('ZADD', ARGV[8] .. ':scheduled', ARGV[11], ARGV[1])
    stratq_index(ARGV[8], ARGV[1], 'running', 'scheduled', ARGV[4], tonumber(ARGV[9]))
    redis.call('PUBLISH', ARGV[5], cjson.encode({id = ARGV[1], status = 'scheduled',
                                                 next_run_ms = tonumber(ARGV[11])}))
    return 1
  end
  redis.call('HSET', KEYS[1], 'last_status', status, 'dead_reason',
             'gave up after ' .. failures .. ' attempts; the last one ended ' .. status)
  status = 'dead'
end
if status == 'dead' then
  redis.call('ZADD', ARGV[8] .. ':dead', ARGV[4], ARGV[1])
end
redis.call('HSET', KEYS[1], 'status', status, 'finished_ms', ARGV[4])
local ttl = tonumber(status == 'succeeded' and ARGV[6] or ARGV[7])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  -- The job's structured log lines live as long as its record.
  redis.call('EXPIRE', KEYS[1] .. ':log', ttl)
else
  redis.call('PERSIST', KEYS[1] .. ':log')
end
stratq_index(ARGV[8], ARGV[1], 'running', status, ARGV[4], tonumber(ARGV[9]))
redis.call('HINCRBY', stats, 'completed:' .. status, 1)
redis.call('PUBLISH', ARGV[5], cjson.encode({id = ARGV[1], status = status}))
return 1
