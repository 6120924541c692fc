-- Shared helpers, prepended to every script when it is loaded (see
-- queue.c), after the generated tables stratq_status (each job status's
-- properties: terminal, retryable, auto_retry, cancellable, failure,
-- indexed) and stratq_buckets (histogram bounds), both from
-- src/queue/status.h. Every key a script touches is one of its KEYS; the
-- names in ARGV are channels and key prefixes only used to build channel
-- names or keys the caller also declared.

-- Whether status (a job's status, or nil) has the property prop
-- ('terminal', 'retryable', ...); false for an unknown status.
local function stratq_is(status, prop)
  local s = stratq_status[status]
  return s ~= nil and s[prop]
end

-- Publishes message on channel with the caller's command (a script's
-- `publish` ARGV): 'SPUBLISH' on Redis Cluster, sharded pub/sub (Redis 7),
-- which keeps the message on the shard that owns the channel's slot, the
-- queue's (every channel carries its hash tag), instead of carrying it to
-- every node over the cluster bus; 'PUBLISH' on a plain server (Redis 6.2
-- has no SPUBLISH). Anything else is taken as 'PUBLISH'.
local function stratq_publish(cmd, channel, message)
  redis.call(cmd == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', channel, message)
end

-- HSET of a Lua array of field/value pairs onto key, in one command.
local function stratq_hset(key, pairs)
  if #pairs > 0 then
    redis.call('HSET', key, unpack(pairs))
  end
end
