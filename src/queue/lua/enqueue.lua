-- Enqueue a new job: create its hash, push its id onto the queue and list
-- it in the `all` index.
-- KEYS[1] job hash, KEYS[2] queue list, KEYS[3] index:all
-- ARGV[1] id, ARGV[2] spec JSON, ARGV[3] now (ms), ARGV[4] events channel,
-- ARGV[5] publish command (lib.lua's stratq_publish), ARGV[6] "1" when the
-- id came from the client (it may exist already), "0" for an id the API
-- made (128 random bits: it cannot)
-- Returns {1, "queued"} when created, {0, <status>} when the id exists
-- (the existing job is left untouched: enqueue is idempotent per id).
if ARGV[6] == '1' and redis.call('HSETNX', KEYS[1], 'status', 'queued') == 0 then
  return {0, redis.call('HGET', KEYS[1], 'status')}
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'spec', ARGV[2], 'attempts', 0, 'created_ms',
           ARGV[3])
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
stratq_publish(ARGV[5], ARGV[4], cjson.encode({id = ARGV[1], status = 'queued'}))
return {1, 'queued'}
