-- Shared helpers, prepended to every script when it is loaded (see
-- queue.c), after the table stratq_status: each job status's properties
-- (terminal, retryable, auto_retry, cancellable, failure), generated from
-- src/queue/status.h. ARGV and KEYS conventions are each script's own.

-- Whether status (a job's status, or nil) has the property prop
-- ('terminal', 'retryable', ...); false for an unknown status.
local function stratq_is(status, prop)
  local s = stratq_status[status]
  return s ~= nil and s[prop]
end

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

-- A job whose worker was lost (killed, OOM-killed, its executor crashed)
-- while it ran: back to the head of the queue, or, once it has lost its
-- worker max times, to the dead set ("a poison pill"). Only a job still
-- running under that worker is touched. Returns 'requeued', 'dead' or nil.
-- prefix: key prefix; queue: queue key; channel: events channel.
local function stratq_lost(prefix, queue, channel, id, worker, now, max, index_max, ttl)
  local job = prefix .. ':job:' .. id
  local f = redis.call('HMGET', job, 'status', 'worker')
  if f[1] == 'queued' then
    -- Moved by BLMOVE but never started: just give it back.
    redis.call('RPUSH', queue, id)
    return 'requeued'
  end
  if f[1] ~= 'running' or f[2] ~= worker then
    return nil
  end
  local lost = redis.call('HINCRBY', job, 'lost', 1)
  if lost >= max then
    local reason = 'worker lost ' .. lost .. ' times'
    redis.call('HSET', job, 'status', 'dead', 'finished_ms', now, 'dead_reason', reason,
               'error', cjson.encode({type = 'WorkerLost', message = reason}))
    redis.call('ZADD', prefix .. ':dead', now, id)
    if ttl > 0 then
      redis.call('EXPIRE', job, ttl)
    end
    stratq_index(prefix, id, 'running', 'dead', now, index_max)
    redis.call('HINCRBY', prefix .. ':stats', 'completed:dead', 1)
    redis.call('PUBLISH', channel, cjson.encode({id = id, status = 'dead', reason = reason}))
    return 'dead'
  end
  redis.call('HSET', job, 'status', 'queued')
  redis.call('RPUSH', queue, id)
  stratq_index(prefix, id, 'running', 'queued', now, index_max)
  redis.call('PUBLISH', channel, cjson.encode({id = id, status = 'queued', lost = lost}))
  return 'requeued'
end
