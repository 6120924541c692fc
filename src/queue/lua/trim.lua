-- Keep each listing index to at most ARGV[1] entries (the oldest go
-- first). Run by the reaper about once a heartbeat interval, so that no
-- job's own path pays for it.
-- KEYS every index (index:all, then one per indexed status)
-- ARGV[1] the most entries an index keeps
-- Returns the number of entries removed.
local max = tonumber(ARGV[1])
local n = 0
if max > 0 then
  for _, key in ipairs(KEYS) do
    n = n + redis.call('ZREMRANGEBYRANK', key, 0, -(max + 1))
  end
end
return n
