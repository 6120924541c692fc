-- Remove a worker that stops. A job still in its processing list (given up
-- at a second stop signal or past the drain timeout) goes back to the head
-- of the queue as queued. Its attempts counter is left as it is, so that
-- (worker, attempt) stays unique and completion fencing holds.
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
  local fields = redis.call('HMGET', job, 'status', 'worker')
  if fields[1] == 'running' and fields[2] == ARGV[1] then
    redis.call('HSET', job, 'status', 'queued')
    redis.call('PUBLISH', ARGV[3], cjson.encode({id = id, status = 'queued'}))
  end
  moved = moved + 1
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return moved
