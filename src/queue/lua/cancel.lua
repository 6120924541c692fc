-- Cancel a job.
-- KEYS[1] job hash, KEYS[2] queue list, KEYS[3] scheduled zset
-- ARGV[1] id, ARGV[2] now (ms), ARGV[3] events channel, ARGV[4] key prefix,
-- ARGV[5] index size limit, ARGV[6] TTL (s) of the cancelled record
-- Only a job whose status is cancellable (waiting or running) is touched.
-- Returns {"cancelled"} for a job that was waiting (removed from the queue
-- and finished at once); {"cancelling"} for a running job (its worker sees
-- cancel_requested_ms, kills it and records "cancelled"); {"terminal",
-- status} for a finished job; {"missing"} for an unknown id.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {'missing'}
end
if not stratq_is(status, 'cancellable') then
  return {'terminal', status}
end
if status ~= 'running' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_ms', ARGV[2], 'error',
             cjson.encode({type = 'Cancelled', message = 'cancelled before it ran'}))
  local ttl = tonumber(ARGV[6])
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[1], ttl)
  end
  stratq_index(ARGV[4], ARGV[1], status, 'cancelled', ARGV[2], tonumber(ARGV[5]))
  redis.call('HINCRBY', ARGV[4] .. ':stats', 'completed:cancelled', 1)
  redis.call('PUBLISH', ARGV[3], cjson.encode({id = ARGV[1], status = 'cancelled'}))
  return {'cancelled'}
end
if not redis.call('HGET', KEYS[1], 'cancel_requested_ms') then
  redis.call('HSET', KEYS[1], 'cancel_requested_ms', ARGV[2])
  redis.call('PUBLISH', ARGV[3], cjson.encode({id = ARGV[1], status = 'cancelling'}))
end
return {'cancelling'}
