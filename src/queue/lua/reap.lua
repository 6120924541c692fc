-- The workers whose heartbeats stopped: for the reaper (a live worker
-- holding the reaper lock), which then gives each one's jobs back with
-- lost.lua and forgets it with forget.lua.
-- KEYS[1] workers zset
-- ARGV[1] now (ms), ARGV[2] silence (ms) after which a worker is dead,
-- ARGV[3] the reaping worker's id (never reaped by itself)
-- Returns their ids.
local out = {}
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
for _, w in ipairs(dead) do
  if w ~= ARGV[3] then
    out[#out + 1] = w
  end
end
return out
