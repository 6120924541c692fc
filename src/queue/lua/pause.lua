-- Pause or resume the queue (tenant "*") or one tenant. Paused, nothing
-- new of theirs starts; jobs already running finish. Pausing the queue
-- parks every entry of the queue list at once, so that LLEN shows no work
-- a worker could take; resuming puts every parked entry back (a worker
-- parks again what is still held).
-- KEYS[1] queue
-- ARGV[1] base, ARGV[2] tenant or "*", ARGV[3] "1" to pause, "0" to
-- resume, ARGV[4] events channel, ARGV[5] publish command
-- Returns 1 when that changed anything, else 0.
local base, t = ARGV[1], ARGV[2]
local paused = stratq_fk(base, 'paused')
local changed
if ARGV[3] == '1' then
  changed = redis.call('SADD', paused, t)
  if t == '*' then
    redis.call('HSET', stratq_fk(base, 'state'), 'paused', '1')
    while redis.call('LMOVE', KEYS[1], stratq_fk(base, 'parked'), 'RIGHT', 'LEFT') do
    end
  else
    stratq_fair_refresh(base, t)
  end
else
  changed = redis.call('SREM', paused, t)
  if t == '*' then
    redis.call('HDEL', stratq_fk(base, 'state'), 'paused')
  else
    stratq_fair_refresh(base, t)
  end
  stratq_fair_unpark(base, KEYS[1], nil)
end
if changed == 1 then
  stratq_publish(ARGV[5], ARGV[4], cjson.encode({paused = ARGV[3] == '1', tenant = t}))
end
return changed
