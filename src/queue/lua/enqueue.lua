-- Enqueue a new job: create its hash and push its id onto the queue.
-- KEYS[1] job hash (stratq:job:<id>), KEYS[2] queue list
-- ARGV[1] id, ARGV[2] spec JSON, ARGV[3] now (ms), ARGV[4] events channel,
-- ARGV[5] key prefix ("stratq"), ARGV[6] index size limit
-- Returns {1, "queued"} when created, {0, <status>} when the id exists
-- (the existing job is left untouched: enqueue is idempotent per id).
local existing = redis.call('HGET', KEYS[1], 'status')
if existing then
  return {0, existing}
end
redis.call('HSET', KEYS[1], 'spec', ARGV[2], 'status', 'queued', 'attempts', 0,
           'created_ms', ARGV[3])
redis.call('LPUSH', KEYS[2], ARGV[1])
local max = tonumber(ARGV[6])
stratq_index(ARGV[5], ARGV[1], nil, 'all', ARGV[3], max)
stratq_index(ARGV[5], ARGV[1], nil, 'queued', ARGV[3], max)
redis.call('HINCRBY', ARGV[5] .. ':stats', 'submitted', 1)
redis.call('PUBLISH', ARGV[4], cjson.encode({id = ARGV[1], status = 'queued'}))
return {1, 'queued'}
