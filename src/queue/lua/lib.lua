-- Shared helpers, prepended to every script when it is loaded (see
-- queue.c). ARGV and KEYS conventions are each script's own.

-- Moves a job between the per-status listing indexes
-- (<prefix>:index:<status>, a ZSET of id -> time it entered the status),
-- keeping each to at most max entries (the oldest go first).
local function stratq_index(prefix, id, old, new, time, max)
  if old and old ~= new then
    redis.call('ZREM', prefix .. ':index:' .. old, id)
  end
  if new then
    local key = prefix .. ':index:' .. new
    redis.call('ZADD', key, time, id)
    if max > 0 then
      redis.call('ZREMRANGEBYRANK', key, 0, -(max + 1))
    end
  end
end

-- Bucket upper bounds (seconds) of the duration and queue-wait histograms.
local stratq_buckets = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

-- Counts one observation into histogram `name` of the stats hash.
local function stratq_observe(stats, name, seconds)
  for i, le in ipairs(stratq_buckets) do
    if seconds <= le then
      redis.call('HINCRBY', stats, name .. ':bucket:' .. i, 1)
      break
    end
  end
  redis.call('HINCRBYFLOAT', stats, name .. ':sum', seconds)
  redis.call('HINCRBY', stats, name .. ':count', 1)
end
