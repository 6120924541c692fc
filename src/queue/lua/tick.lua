-- One tick of a recurring job's schedule (docs/protocol.md, "Recurring
-- jobs"): workers read the schedules due (ZRANGEBYSCORE of the due zset),
-- work out each one's next fire in C (a cron expression in its time zone
-- or an interval, after now: the fires missed while no worker ticked come
-- to this one) and call this. It is fenced on the due score read: when
-- another replica ticked the schedule first, its score has moved on and
-- this is a no-op, so each fire makes one job however many replicas tick.
-- With overlap "skip", a fire while the schedule's last job has not ended
-- makes no job (counted in `skipped`). Either way the schedule moves on to
-- its next fire.
-- KEYS[1] schedule hash, KEYS[2] schedules:due zset, KEYS[3] the new job's
-- hash, KEYS[4] queue list, KEYS[5] index:all
-- ARGV[1] schedule id, ARGV[2] the due score read (ms), ARGV[3] the next
-- fire (ms; 0: none, the schedule stops), ARGV[4] the new job's id,
-- ARGV[5] now (ms), ARGV[6] events channel, ARGV[7] publish command,
-- ARGV[8] base
-- Returns {1, job id} when it made the job, {2, last job id} when it
-- skipped the fire, {0, "fenced"} (ticked already), {0, "gone"} (deleted
-- or paused: taken out of the due zset).
local id, due, next_ms, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[5]
local score = redis.call('ZSCORE', KEYS[2], id)
if not score or tonumber(score) ~= tonumber(due) then
  return {0, 'fenced'}
end
local s = redis.call('HMGET', KEYS[1], 'spec', 'tenant', 'priority', 'overlap', 'paused',
                     'last_job')
if not s[1] or s[5] == '1' then
  redis.call('ZREM', KEYS[2], id)
  return {0, 'gone'}
end
if next_ms > tonumber(now) then
  redis.call('ZADD', KEYS[2], next_ms, id)
  redis.call('HSET', KEYS[1], 'next_ms', next_ms)
else
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[1], 'next_ms')
end
redis.call('HSET', KEYS[1], 'last_due_ms', due)
local last = s[6]
if s[4] == 'skip' and last and last ~= '' then
  local st = redis.call('HGET', ARGV[8] .. ':job:' .. last, 'status')
  if st and not stratq_is(st, 'terminal') then
    redis.call('HINCRBY', KEYS[1], 'skipped', 1)
    return {2, last}
  end
end
stratq_enqueue({job = KEYS[3], queue = KEYS[4], all = KEYS[5]},
               {id = ARGV[4], spec = s[1], now = now, events = ARGV[6], publish = ARGV[7],
                tenant = s[2] or '', priority = s[3] or '5', run_at = 0, base = ARGV[8]},
               {'schedule', id, 'schedule_ms', due})
redis.call('HSET', KEYS[1], 'last_job', ARGV[4], 'last_fire_ms', now)
redis.call('HINCRBY', KEYS[1], 'fires', 1)
return {1, ARGV[4]}
