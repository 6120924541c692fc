-- Remove a worker that stops. A job still in its processing list (given up
-- at a second stop signal or past the drain timeout) goes back to the queue
-- as queued, and the attempt it was on is not counted.
-- KEYS[1] workers zset, KEYS[2] worker hash, KEYS[3] processing list,
-- KEYS[4] queue. ARGV[1] worker id, ARGV[2] job key prefix ("stratq:job:"),
-- ARGV[3] events channel.
-- Returns the number of jobs given back.
local moved = 0
while true do
  local id = redis.call('LMOVE', KEYS[3], KEYS[4], 'RIGHT', 'RIGHT')
  if not id then
    break
  end
  local job = ARGV[2] .. id
  if redis.call('HGET', job, 'status') == 'running' then
    redis.call('HSET', job, 'status', 'queued')
    redis.call('HINCRBY', job, 'attempts', -1)
    redis.call('PUBLISH', ARGV[3], cjson.encode({id = id, status = 'queued'}))
  end
  moved = moved + 1
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return moved
