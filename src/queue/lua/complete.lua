-- Record a job's outcome, fenced on the worker's processing list: the
-- result is written only if the job's id is still in this worker's list.
-- Every path that takes a job from a worker (the reaper, lost.lua, a
-- deregistering worker) takes its id off that list first, and a worker
-- runs one job at a time, so a worker whose job was reaped and re-run
-- elsewhere never overwrites the result.
-- KEYS[1] job hash, KEYS[2] the worker's processing list, KEYS[3] the
-- job's live stdout, KEYS[4] its live stderr, KEYS[5] its log lines,
-- KEYS[6] scheduled zset, KEYS[7] dead zset, KEYS[8] the index of ARGV[11],
-- KEYS[9] index:scheduled, KEYS[10] index:dead, KEYS[11] queue
-- ARGV[1] id, ARGV[2] worker id, ARGV[3] attempt, ARGV[4] now (ms),
-- ARGV[5] events channel, ARGV[6] publish command (lib.lua's
-- stratq_publish), ARGV[7] TTL in seconds of a succeeded job's record,
-- ARGV[8] TTL of any other outcome (0: keep), ARGV[9] the job's
-- max_attempts, ARGV[10] when to run it again (ms) if this outcome is
-- retried, ARGV[11] status, ARGV[12] "1" when the run wrote live output or
-- log lines (KEYS[3..5]), ARGV[13] base, then field/value pairs (result,
-- error, stdout, ...). The running slot of a job taken by fair share is
-- given back (lib.lua's stratq_fair_release) whatever the outcome.
-- A run whose status is auto_retry (failed, timed out or crashed) of a job
-- with attempts left is not final: the job becomes "scheduled" until
-- ARGV[10]; one with none left becomes "dead". Runs ended by a lost worker
-- or a drain never get here and so never count against max_attempts.
-- Returns 1 when recorded, 0 when fenced off, 2 when this very outcome was
-- recorded already (the worker's first call went through but its reply was
-- lost with the connection).
if redis.call('LREM', KEYS[2], 1, ARGV[1]) == 0 then
  local f = redis.call('HMGET', KEYS[1], 'status', 'worker', 'attempts')
  if f[1] ~= 'running' and f[2] == ARGV[2] and f[3] == ARGV[3] then
    return 2
  end
  return 0
end
stratq_fair_release(ARGV[13], KEYS[11], KEYS[1])
local status = ARGV[11]
local now = ARGV[4]
local fields = {}
for i = 14, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
if ARGV[12] == '1' then
  -- The live output of the running job is now in the hash.
  redis.call('DEL', KEYS[3], KEYS[4])
end
local max_attempts = tonumber(ARGV[9])
if stratq_is(status, 'auto_retry') and max_attempts > 1 then
  local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  if failures < max_attempts then
    for _, v in ipairs({'status', 'scheduled', 'next_run_ms', ARGV[10], 'last_status', status,
                        'finished_ms', now}) do
      fields[#fields + 1] = v
    end
    stratq_hset(KEYS[1], fields)
    redis.call('ZADD', KEYS[6], ARGV[10], ARGV[1])
    redis.call('ZADD', KEYS[9], now, ARGV[1])
    stratq_publish(ARGV[6], ARGV[5], cjson.encode({id = ARGV[1], status = 'scheduled',
                                                   next_run_ms = tonumber(ARGV[10])}))
    return 1
  end
  for _, v in ipairs({'last_status', status, 'dead_reason',
                      'gave up after ' .. failures .. ' attempts; the last one ended ' .. status}) do
    fields[#fields + 1] = v
  end
  status = 'dead'
end
fields[#fields + 1] = 'status'
fields[#fields + 1] = status
fields[#fields + 1] = 'finished_ms'
fields[#fields + 1] = now
stratq_hset(KEYS[1], fields)
if status == 'dead' then
  redis.call('ZADD', KEYS[7], now, ARGV[1])
  redis.call('ZADD', KEYS[10], now, ARGV[1])
elseif stratq_is(status, 'indexed') then
  redis.call('ZADD', KEYS[8], now, ARGV[1])
end
local ttl = tonumber(status == 'succeeded' and ARGV[7] or ARGV[8])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
end
if ARGV[12] == '1' then
  -- The job's structured log lines live as long as its record.
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[5], ttl)
  else
    redis.call('PERSIST', KEYS[5])
  end
end
stratq_publish(ARGV[6], ARGV[5], cjson.encode({id = ARGV[1], status = status}))
return 1
