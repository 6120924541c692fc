-- A job taken from its worker: its executor died mid-job, the worker was
-- reaped (ARGV[8] "1": the loss counts), or the worker gives it back as it
-- stops (ARGV[8] "0": it does not). The job goes back to the head of the
-- queue, or, once it has lost its worker max times, to the dead set ("a
-- poison pill"). Only a job still running under that worker, or taken but
-- not started, is touched; its id leaves the worker's processing list in
-- every case.
-- KEYS[1] the worker's processing list, KEYS[2] queue, KEYS[3] job hash,
-- KEYS[4] dead zset, KEYS[5] index:dead
-- ARGV[1] id, ARGV[2] worker id, ARGV[3] now (ms), ARGV[4] events channel,
-- ARGV[5] publish command (lib.lua's stratq_publish), ARGV[6] max
-- deliveries, ARGV[7] TTL (s) of a dead job's record, ARGV[8] "1" when the
-- loss counts, ARGV[9] base
-- A fair-share ticket (lib.lua) taken but not yet turned into a job goes
-- back to the queue; a job taken by fair share gives back its running slot
-- and waits again at the head of its tenant's backlog.
-- Returns 'requeued', 'dead' or '' (the job was no longer this worker's).
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return ''
end
local base = ARGV[9]
if ARGV[1] == stratq_ticket then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 'requeued'
end
-- Back to waiting: at the head of its tenant's backlog, or of the queue.
local function requeue()
  local t, score = stratq_fair_release(base, KEYS[2], KEYS[3])
  if t then
    stratq_fair_wait(base, KEYS[2], ARGV[1], t, nil, tonumber(score), true)
  else
    redis.call('RPUSH', KEYS[2], ARGV[1])
  end
end
local f = redis.call('HMGET', KEYS[3], 'status', 'worker')
if f[1] == 'queued' then
  -- Moved by BLMOVE but never started: just give it back.
  requeue()
  return 'requeued'
end
if f[1] ~= 'running' or f[2] ~= ARGV[2] then
  return ''
end
local lost = 0
if ARGV[8] == '1' then
  lost = redis.call('HINCRBY', KEYS[3], 'lost', 1)
end
if ARGV[8] == '1' and lost >= tonumber(ARGV[6]) then
  local now = ARGV[3]
  local reason = 'worker lost ' .. lost .. ' times'
  redis.call('HSET', KEYS[3], 'status', 'dead', 'finished_ms', now, 'dead_reason', reason,
             'error', cjson.encode({type = 'WorkerLost', message = reason}))
  stratq_fair_release(base, KEYS[2], KEYS[3])
  redis.call('ZADD', KEYS[4], now, ARGV[1])
  redis.call('ZADD', KEYS[5], now, ARGV[1])
  local ttl = tonumber(ARGV[7])
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[3], ttl)
  end
  stratq_publish(ARGV[5], ARGV[4], cjson.encode({id = ARGV[1], status = 'dead', reason = reason}))
  return 'dead'
end
-- Its attempts counter is left as it is, so that (worker, attempt) stays
-- unique and completion fencing holds.
redis.call('HSET', KEYS[3], 'status', 'queued')
requeue()
local event = {id = ARGV[1], status = 'queued'}
if lost > 0 then
  event.lost = lost
end
stratq_publish(ARGV[5], ARGV[4], cjson.encode(event))
return 'requeued'
