-- Start a job a worker has just moved (BLMOVE) into its processing list.
-- KEYS[1] job hash, KEYS[2] the worker's processing list
-- ARGV[1] id, ARGV[2] worker id, ARGV[3] now (ms), ARGV[4] events channel,
-- ARGV[5] publish command (lib.lua's stratq_publish)
-- Returns {"run", attempt, spec, failures so far, created_ms}; {"missing"}
-- when no job hash exists; {"skip", status} when the job is no longer
-- queued (e.g. cancelled) or not in the worker's list. In the last two cases the id is removed from
-- the processing list. The worker's own hash is the heartbeat's to write.
local f = redis.call('HMGET', KEYS[1], 'status', 'worker', 'attempts', 'spec', 'failures',
                     'created_ms')
local status = f[1]
if not status then
  redis.call('LREM', KEYS[2], 1, ARGV[1])
  return {'missing'}
end
-- Only a job in this worker's list is started: after a failover that
-- lost the worker's BLMOVE (replication is asynchronous), its second ask
-- finds the job queued again, for any worker to take.
if not redis.call('LPOS', KEYS[2], ARGV[1]) then
  return {'skip', status}
end
-- The same worker asking again (its first call's reply was lost with the
-- connection) gets the same answer, so the job is not stranded.
if status == 'running' and f[2] == ARGV[2] then
  return {'run', tonumber(f[3]), f[4] or '', tonumber(f[5] or '0'), tonumber(f[6] or '0')}
end
if status ~= 'queued' then
  redis.call('LREM', KEYS[2], 1, ARGV[1])
  return {'skip', status}
end
local attempt = tonumber(f[3] or '0') + 1
if attempt > 1 then
  -- What an earlier attempt left; a first attempt has none of it.
  redis.call('HDEL', KEYS[1], 'finished_ms', 'result', 'error', 'stdout', 'stderr', 'usage',
             'cancel_requested_ms', 'next_run_ms', 'progress')
end
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[2], 'started_ms', ARGV[3],
           'attempts', attempt)
stratq_publish(ARGV[5], ARGV[4], cjson.encode({id = ARGV[1], status = 'running',
                                               worker = ARGV[2], attempt = attempt}))
return {'run', attempt, f[4] or '', tonumber(f[5] or '0'), tonumber(f[6] or '0')}
