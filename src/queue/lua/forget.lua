-- Forget a worker: one that stops (after giving its jobs back with
-- lost.lua), or one the reaper found silent (after the same).
-- KEYS[1] workers zset, KEYS[2] worker hash, KEYS[3] its processing list
-- ARGV[1] worker id
-- Returns the number of ids left in its processing list, now dropped (0
-- unless a job was taken but not started in between).
local left = redis.call('LLEN', KEYS[3])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
return left
