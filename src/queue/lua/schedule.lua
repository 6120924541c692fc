-- Creates, deletes, pauses or resumes a recurring job's schedule (POST,
-- DELETE /v1/schedules/{id}, .../pause, .../resume). The API checks the
-- schedule and works out its next fire; the workers tick it (tick.lua).
-- KEYS[1] schedule hash, KEYS[2] schedules zset (every schedule, by
-- creation time), KEYS[3] schedules:due zset (the active ones, by next
-- fire)
-- ARGV[1] "add", "delete", "pause" or "resume", ARGV[2] schedule id,
-- ARGV[3] now (ms), ARGV[4] next fire (ms; add and resume), ARGV[5] the
-- tenant the request may act for ("": any), then (add) the hash's field
-- value pairs
-- Returns {code, {field, value, ...}}: the schedule's hash after the change
-- (before it, for delete). code 1: done; 2: nothing to change (paused or
-- active already; an add whose id exists); 0: no such schedule, or one of
-- another tenant (an empty hash).
local action, id, next_ms = ARGV[1], ARGV[2], ARGV[4]
if action == 'add' then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    return {2, redis.call('HGETALL', KEYS[1])}
  end
  local pairs = {}
  for i = 6, #ARGV do
    pairs[#pairs + 1] = ARGV[i]
  end
  stratq_hset(KEYS[1], pairs)
  redis.call('HSET', KEYS[1], 'id', id, 'created_ms', ARGV[3], 'paused', '0', 'next_ms', next_ms,
             'fires', 0, 'skipped', 0)
  redis.call('ZADD', KEYS[2], ARGV[3], id)
  redis.call('ZADD', KEYS[3], next_ms, id)
  return {1, redis.call('HGETALL', KEYS[1])}
end
local t = redis.call('HGET', KEYS[1], 'tenant')
if not t or (ARGV[5] ~= '' and ARGV[5] ~= t) then
  return {0, {}}
end
local paused = redis.call('HGET', KEYS[1], 'paused') == '1'
if action == 'delete' then
  local was = redis.call('HGETALL', KEYS[1])
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  return {1, was}
end
if (action == 'pause') == paused then
  return {2, redis.call('HGETALL', KEYS[1])}
end
if action == 'pause' then
  redis.call('HSET', KEYS[1], 'paused', '1')
  redis.call('HDEL', KEYS[1], 'next_ms')
  redis.call('ZREM', KEYS[3], id)
else
  redis.call('HSET', KEYS[1], 'paused', '0', 'next_ms', next_ms)
  redis.call('ZADD', KEYS[3], next_ms, id)
end
return {1, redis.call('HGETALL', KEYS[1])}
