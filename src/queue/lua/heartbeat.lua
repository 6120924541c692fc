-- Register or refresh a worker.
-- KEYS[1] workers zset, KEYS[2] worker hash
-- ARGV[1] worker id, ARGV[2] now (ms), ARGV[3] hash TTL (ms),
-- then field/value pairs for the worker hash.
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], 'last_heartbeat_ms', ARGV[2])
-- The job counters are kept by start/complete; a new worker starts at 0.
redis.call('HSETNX', KEYS[2], 'jobs_done', 0)
redis.call('HSETNX', KEYS[2], 'jobs_failed', 0)
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
