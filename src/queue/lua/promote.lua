-- Move retries whose backoff has passed from the scheduled set to the
-- queue. Run by live workers about once a second.
-- KEYS[1] scheduled zset, KEYS[2] queue
-- ARGV[1] now (ms), ARGV[2] key prefix, ARGV[3] events channel,
-- ARGV[4] index size limit
-- Returns the number of jobs promoted.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 200)
local n = 0
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local job = ARGV[2] .. ':job:' .. id
  if redis.call('HGET', job, 'status') == 'scheduled' then
    redis.call('HSET', job, 'status', 'queued')
    redis.call('HDEL', job, 'next_run_ms')
    redis.call('LPUSH', KEYS[2], id)
    stratq_index(ARGV[2], id, 'scheduled', 'queued', ARGV[1], tonumber(ARGV[4]))
    redis.call('PUBLISH', ARGV[3], cjson.encode({id = id, status = 'queued'}))
    n = n + 1
  end
end
return n
