-- Requeue the jobs of workers that stopped heartbeating, and forget those
-- workers. Run by any live worker while it holds the reaper lock.
-- KEYS[1] workers zset, KEYS[2] queue
-- ARGV[1] now (ms), ARGV[2] silence (ms) after which a worker is dead,
-- ARGV[3] key prefix, ARGV[4] events channel, ARGV[5] max deliveries,
-- ARGV[6] index size limit, ARGV[7] TTL (s) of a dead job's record,
-- ARGV[8] the reaping worker's id (never reaped by itself)
-- Returns {workers reaped, jobs requeued, jobs dead}.
local now = tonumber(ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local reaped, requeued, died = 0, 0, 0
for _, w in ipairs(dead) do
  if w ~= ARGV[8] then
    local plist = ARGV[3] .. ':processing:' .. w
    for _, id in ipairs(redis.call('LRANGE', plist, 0, -1)) do
      local what = stratq_lost(ARGV[3], KEYS[2], ARGV[4], id, w, ARGV[1], tonumber(ARGV[5]),
                               tonumber(ARGV[6]), tonumber(ARGV[7]))
      if what == 'requeued' then
        requeued = requeued + 1
      elseif what == 'dead' then
        died = died + 1
      end
    end
    redis.call('DEL', plist, ARGV[3] .. ':worker:' .. w)
    redis.call('ZREM', KEYS[1], w)
    reaped = reaped + 1
  end
end
return {reaped, requeued, died}
