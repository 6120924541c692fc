-- Start a job a worker has just moved (BLMOVE) into its processing list.
-- KEYS[1] job hash, KEYS[2] the worker's processing list, KEYS[3] queue
-- ARGV[1] id, or the ticket '*' of a job waiting by fair share (lib.lua),
-- ARGV[2] worker id, ARGV[3] now (ms, with a fraction for the µs: stored as
-- started_ms, whole, and started_us), ARGV[4] events channel,
-- ARGV[5] publish command (lib.lua's stratq_publish), ARGV[6] base
-- Returns {"run", attempt, spec, failures so far, waiting since (ms: its
-- submission, or when a scheduled job became due), id}, id being
-- the job a ticket stood for (ARGV[1] otherwise); {"missing"} when no job
-- hash exists; {"skip", status} when the job is no longer queued (e.g.
-- cancelled) or not in the worker's list; {"skip", "held"} when a ticket
-- found no tenant that may start a job now (the ticket is parked), and
-- {"skip", "none"} when nothing was waiting (the ticket is dropped). In the
-- skip and missing cases the entry is removed from the processing list.
-- The worker's own hash is the heartbeat's to write.
local id, jobkey = ARGV[1], KEYS[1]
local ticket = false
local base = ARGV[6]
if id == stratq_ticket then
  local pos = redis.call('LPOS', KEYS[2], id)
  if not pos then
    -- Asked again (the first reply was lost with the connection): the job
    -- the first call put in the ticket's place, first in the list, is
    -- this worker's to run.
    local first = redis.call('LINDEX', KEYS[2], 0)
    local g = first and redis.call('HMGET', base .. ':job:' .. first, 'status', 'worker',
                                   'attempts', 'spec', 'failures', 'created_ms', 'ready_ms')
    if g and g[1] == 'running' and g[2] == ARGV[2] then
      return {'run', tonumber(g[3]), g[4] or '', tonumber(g[5] or '0'),
              tonumber(g[7] or g[6] or '0'), first}
    end
    return {'skip', 'gone'}
  end
  local picked, slot = stratq_fair_pick(base)
  if not picked then
    redis.call('LREM', KEYS[2], 1, id)
    if stratq_fair_waiting(base) > 0 then
      redis.call('LPUSH', stratq_fk(base, 'parked'), id)
      return {'skip', 'held'}
    end
    return {'skip', 'none'}
  end
  id, jobkey = picked, base .. ':job:' .. picked
  redis.call('LSET', KEYS[2], pos, id)
  ticket = slot
elseif redis.call('HGET', stratq_fk(base, 'state'), 'paused') and
    redis.call('HGET', jobkey, 'status') == 'queued' then
  -- A job pushed straight onto the queue (no tenant) waits out a pause
  -- parked, too.
  redis.call('LREM', KEYS[2], 1, id)
  redis.call('LPUSH', stratq_fk(base, 'parked'), id)
  return {'skip', 'held'}
end
local f = redis.call('HMGET', jobkey, 'status', 'worker', 'attempts', 'spec', 'failures',
                     'created_ms', 'ready_ms')
-- Waiting since: its submission, or when it became due (promote.lua).
f[6] = f[7] or f[6]
local status = f[1]
-- A job picked by fair share and not run gives its tenant's slot back.
local function unpick()
  if ticket then
    stratq_fair_release_slot(base, KEYS[3], ticket)
  end
end
if not status then
  unpick()
  redis.call('LREM', KEYS[2], 1, id)
  return {'missing'}
end
-- Only a job in this worker's list is started: after a failover that
-- lost the worker's BLMOVE (replication is asynchronous), its second ask
-- finds the job queued again, for any worker to take.
if not ticket and not redis.call('LPOS', KEYS[2], id) then
  return {'skip', status}
end
-- The same worker asking again (its first call's reply was lost with the
-- connection) gets the same answer, so the job is not stranded.
if status == 'running' and f[2] == ARGV[2] then
  return {'run', tonumber(f[3]), f[4] or '', tonumber(f[5] or '0'), tonumber(f[6] or '0'), id}
end
if status ~= 'queued' then
  unpick()
  redis.call('LREM', KEYS[2], 1, id)
  return {'skip', status}
end
local attempt = tonumber(f[3] or '0') + 1
if attempt > 1 then
  -- What an earlier attempt left; a first attempt has none of it.
  redis.call('HDEL', jobkey, 'finished_ms', 'result', 'error', 'stdout', 'stderr', 'usage',
             'cancel_requested_ms', 'next_run_ms', 'progress')
end
-- A job picked by fair share also keeps the running slot its tenant's cap
-- counts (lib.lua).
local now = tonumber(ARGV[3]) or 0
redis.call('HSET', jobkey, 'status', 'running', 'worker', ARGV[2], 'started_ms',
           string.format('%.0f', math.floor(now)), 'started_us', string.format('%.0f', now * 1000),
           'attempts', attempt, ticket and 'slot' or 'attempts', ticket or attempt)
stratq_publish(ARGV[5], ARGV[4], cjson.encode({id = id, status = 'running',
                                               worker = ARGV[2], attempt = attempt}))
return {'run', attempt, f[4] or '', tonumber(f[5] or '0'), tonumber(f[6] or '0'), id}
