-- Cancel a job.
-- KEYS[1] job hash, KEYS[2] queue list, KEYS[3] scheduled zset,
-- KEYS[4] index:cancelled
-- ARGV[1] id, ARGV[2] now (ms), ARGV[3] events channel, ARGV[4] publish
-- command (lib.lua's stratq_publish), ARGV[5] TTL (s) of the cancelled
-- record, ARGV[6] prefix of the workers' control channels, ARGV[7] base
-- Only a job whose status is cancellable (waiting or running) is touched.
-- Returns {"cancelled"} for a job that was waiting (removed from the queue
-- and finished at once); {"cancelling"} for a running job: the request is
-- published on its worker's control channel (ARGV[6] .. worker id), which
-- the worker listens to while it runs a job, and kept in the hash as
-- cancel_requested_ms, which the worker reads when its subscription was
-- interrupted; the worker kills the job and records "cancelled".
-- {"terminal", status} for a finished job; {"missing"} for an unknown id.
local f = redis.call('HMGET', KEYS[1], 'status', 'worker', 'cancel_requested_ms')
local status = f[1]
if not status then
  return {'missing'}
end
if not stratq_is(status, 'cancellable') then
  return {'terminal', status}
end
if status ~= 'running' then
  if not stratq_fair_unwait(ARGV[7], KEYS[2], ARGV[1], KEYS[1]) then
    redis.call('LREM', KEYS[2], 0, ARGV[1])
  end
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_ms', ARGV[2], 'error',
             cjson.encode({type = 'Cancelled', message = 'cancelled before it ran'}))
  local ttl = tonumber(ARGV[5])
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[1], ttl)
  end
  redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
  stratq_publish(ARGV[4], ARGV[3], cjson.encode({id = ARGV[1], status = 'cancelled'}))
  return {'cancelled'}
end
if not f[3] then
  redis.call('HSET', KEYS[1], 'cancel_requested_ms', ARGV[2])
  local event = cjson.encode({id = ARGV[1], status = 'cancelling'})
  stratq_publish(ARGV[4], ARGV[3], event)
  stratq_publish(ARGV[4], ARGV[6] .. (f[2] or ''), event)
end
return {'cancelling'}
