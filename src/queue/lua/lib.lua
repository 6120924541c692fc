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

-- Fair share (docs/protocol.md, "Tenants, priorities and fair share").
-- A job submitted with a tenant waits in its tenant's backlog, a zset
-- <base>:fair:bk:<tenant> scored (9 - priority) * 2^44 + seq, so that its
-- head is the tenant's oldest job of its highest priority; the queue list
-- holds one ticket (stratq_ticket) per waiting job. A worker moves a ticket
-- as it would a job id (BLMOVE), and start.lua turns it into the job that
-- is next by fairness (stratq_fair_pick): the highest priority any eligible
-- tenant has waiting, and within it the tenant whose pass is least
-- (stride scheduling: each job taken adds 1/weight to its tenant's pass).
-- <base>:fair:act:<priority> zsets hold the eligible tenants by pass, each
-- in the zset of its head's priority (state field class:<tenant>), and
-- <base>:fair:classes the priorities whose act zset is not empty; a tenant
-- at its cap of running jobs, or paused, is in none. A ticket taken when
-- no tenant is eligible is parked (<base>:fair:parked) and put back when
-- one becomes eligible. Every fair key is derived from <base>, passed in
-- ARGV: they all carry the queue's hash tag, so on Redis Cluster they live
-- in the slot of the script's declared keys. The hot paths (a job waits,
-- is picked, ends) take a handful of commands; stratq_fair_refresh, which
-- works out a tenant's place from scratch, runs only when its eligibility
-- may have changed.
local stratq_ticket = '*'
local stratq_class = 17592186044416 -- 2^44

local function stratq_fk(base, what)
  return base .. ':fair:' .. what
end

-- The tenant's weight (> 0, default 1) and cap (0: none) from the
-- <base>:fair:config hash the API writes ("*": every other tenant).
local function stratq_fair_conf(base, t)
  local c = redis.call('HMGET', stratq_fk(base, 'config'), 'weight:' .. t, 'weight:*',
                       'cap:' .. t, 'cap:*')
  local weight = tonumber(c[1] or c[2] or '1') or 1
  return weight > 0 and weight or 1, tonumber(c[3] or c[4] or '0') or 0
end

local function stratq_act_add(base, p, t, pass)
  redis.call('ZADD', stratq_fk(base, 'act:' .. p), pass, t)
  redis.call('ZADD', stratq_fk(base, 'classes'), p, p)
end

local function stratq_act_rem(base, p, t)
  local act = stratq_fk(base, 'act:' .. p)
  redis.call('ZREM', act, t)
  if redis.call('ZCARD', act) == 0 then
    redis.call('ZREM', stratq_fk(base, 'classes'), p)
  end
end

-- The priority class of a backlog score.
local function stratq_class_of(score)
  return tostring(9 - math.floor(tonumber(score) / stratq_class))
end

-- Puts tenant t in the act zset its state calls for: the one of its head
-- job's priority when it may start a job (not paused, under its cap) and
-- has one waiting, else none. Returns true when it is in one.
local function stratq_fair_refresh(base, t)
  local st = stratq_fk(base, 'state')
  local f = redis.call('HMGET', st, 'class:' .. t, 'run:' .. t, 'pass:' .. t, 'vt')
  local cur, want = f[1] or nil, nil
  local _, cap = stratq_fair_conf(base, t)
  if redis.call('SISMEMBER', stratq_fk(base, 'paused'), t) == 0 and
      (cap <= 0 or tonumber(f[2] or '0') < cap) then
    local head = redis.call('ZRANGE', stratq_fk(base, 'bk:' .. t), 0, 0, 'WITHSCORES')
    if head[1] then
      want = stratq_class_of(head[2])
    end
  end
  if cur == want then
    return want ~= nil
  end
  local pass = tonumber(f[3] or '0')
  if cur then
    -- While a tenant is active its act score is its pass; kept in the
    -- state when it leaves, with vt, the pass a tenant coming back to an
    -- empty class starts from.
    pass = tonumber(redis.call('ZSCORE', stratq_fk(base, 'act:' .. cur), t) or pass)
    stratq_act_rem(base, cur, t)
    redis.call('HSET', st, 'pass:' .. t, pass, 'vt', pass)
    redis.call('HDEL', st, 'class:' .. t)
  end
  if want then
    -- A tenant coming back starts level with the least served active one
    -- of its class: no credit for the time it had nothing waiting.
    local least = redis.call('ZRANGE', stratq_fk(base, 'act:' .. want), 0, 0, 'WITHSCORES')
    pass = math.max(pass, tonumber(least[2] or f[4] or '0'))
    stratq_act_add(base, want, t, pass)
    redis.call('HSET', st, 'class:' .. t, want)
  end
  return want ~= nil
end

-- The jobs waiting in every tenant's backlog.
local function stratq_fair_waiting(base)
  local n = 0
  for _, t in ipairs(redis.call('SMEMBERS', stratq_fk(base, 'tenants'))) do
    n = n + redis.call('ZCARD', stratq_fk(base, 'bk:' .. t))
  end
  return n
end

-- {tenant, waiting, running, ...} for every tenant that ever had a job
-- wait, with its weight (a string) and cap after each when conf.
local function stratq_fair_tenants(base, conf)
  local st = stratq_fk(base, 'state')
  local rows = {}
  for _, t in ipairs(redis.call('SMEMBERS', stratq_fk(base, 'tenants'))) do
    rows[#rows + 1] = t
    rows[#rows + 1] = redis.call('ZCARD', stratq_fk(base, 'bk:' .. t))
    rows[#rows + 1] = tonumber(redis.call('HGET', st, 'run:' .. t) or '0')
    if conf then
      local weight, cap = stratq_fair_conf(base, t)
      rows[#rows + 1] = tostring(weight)
      rows[#rows + 1] = cap
    end
  end
  return rows
end

-- Moves up to n parked entries (all when n is nil) back to the queue,
-- unless the whole queue is paused.
local function stratq_fair_unpark(base, queue, n)
  local parked = stratq_fk(base, 'parked')
  local moved = 0
  if redis.call('HGET', stratq_fk(base, 'state'), 'paused') then
    return 0
  end
  while (n == nil or moved < n) and redis.call('LMOVE', parked, queue, 'RIGHT', 'LEFT') do
    moved = moved + 1
  end
  return moved
end

-- Job id of tenant t waits in t's backlog at priority prio, at the end, or
-- at score (a job given back: its old place, and front: its ticket at the
-- queue's head); its ticket goes to the queue, or is parked when no tenant
-- can take it now.
local function stratq_fair_wait(base, queue, id, t, prio, score, front)
  local st = stratq_fk(base, 'state')
  if score then
    prio = stratq_class_of(score)
  else
    score = (9 - tonumber(prio)) * stratq_class + redis.call('HINCRBY', st, 'seq', 1)
  end
  redis.call('ZADD', stratq_fk(base, 'bk:' .. t), score, id)
  local f = redis.call('HMGET', st, 'class:' .. t, 'paused')
  local active = f[1] ~= false
  if not active then
    -- Its first job, or it was held: work its place out.
    redis.call('SADD', stratq_fk(base, 'tenants'), t)
    active = stratq_fair_refresh(base, t)
  elseif tonumber(prio) > tonumber(f[1]) then
    -- A higher priority than its head's: the tenant moves up a class,
    -- with its pass.
    local pass = redis.call('ZSCORE', stratq_fk(base, 'act:' .. f[1]), t) or '0'
    stratq_act_rem(base, f[1], t)
    stratq_act_add(base, prio, t, pass)
    redis.call('HSET', st, 'class:' .. t, prio)
  end
  if not active or f[2] then
    redis.call('LPUSH', stratq_fk(base, 'parked'), stratq_ticket)
  elseif front then
    redis.call('RPUSH', queue, stratq_ticket)
  else
    redis.call('LPUSH', queue, stratq_ticket)
  end
end

-- Makes job id (hash jobkey) wait again, by fair share when it has a
-- tenant, else as its id on the queue (promote.lua, retry.lua).
local function stratq_wait_again(base, queue, id, jobkey)
  local f = redis.call('HMGET', jobkey, 'tenant', 'priority')
  if f[1] then
    stratq_fair_wait(base, queue, id, f[1], f[2] or '5', nil, false)
  else
    redis.call('LPUSH', queue, id)
  end
end

-- Takes a waiting job (cancelled, say) out of its tenant's backlog, with
-- one ticket. Returns true when it was waiting there.
local function stratq_fair_unwait(base, queue, id, jobkey)
  local t = redis.call('HGET', jobkey, 'tenant')
  if not t or redis.call('ZREM', stratq_fk(base, 'bk:' .. t), id) == 0 then
    return false
  end
  stratq_fair_refresh(base, t)
  if redis.call('LREM', queue, 1, stratq_ticket) == 0 then
    redis.call('LREM', stratq_fk(base, 'parked'), 1, stratq_ticket)
  end
  return true
end

-- The next job by fairness, counted as running for its tenant, and what
-- the caller stores as its hash's `slot` (its tenant and place, which
-- stratq_fair_release gives back); nil when no tenant may start a job.
local function stratq_fair_pick(base)
  local st = stratq_fk(base, 'state')
  if redis.call('HGET', st, 'paused') then
    return nil
  end
  for _, p in ipairs(redis.call('ZREVRANGE', stratq_fk(base, 'classes'), 0, -1)) do
    local top = redis.call('ZRANGE', stratq_fk(base, 'act:' .. p), 0, 0, 'WITHSCORES')
    if top[1] then
      local t, pass = top[1], tonumber(top[2])
      local bk = stratq_fk(base, 'bk:' .. t)
      local job = redis.call('ZPOPMIN', bk)
      local weight, cap = stratq_fair_conf(base, t)
      local running = redis.call('HINCRBY', st, 'run:' .. t, 1)
      local head = redis.call('ZRANGE', bk, 0, 0, 'WITHSCORES')
      local next_class = head[1] and (cap <= 0 or running < cap) and stratq_class_of(head[2])
      pass = pass + 1 / weight
      if next_class == p then
        -- The common case: one command.
        redis.call('ZADD', stratq_fk(base, 'act:' .. p), pass, t)
      else
        stratq_act_rem(base, p, t)
        if next_class then
          stratq_act_add(base, next_class, t, pass)
          redis.call('HSET', st, 'class:' .. t, next_class)
        else
          redis.call('HSET', st, 'pass:' .. t, pass, 'vt', pass)
          redis.call('HDEL', st, 'class:' .. t)
        end
      end
      if job[1] then
        return job[1], t .. ' ' .. job[2]
      end
      redis.call('HINCRBY', st, 'run:' .. t, -1)
    else
      redis.call('ZREM', stratq_fk(base, 'classes'), p)
    end
  end
  return nil
end

-- Gives back the running slot a picked job holds (when it ends, or goes
-- back to waiting), and a parked ticket when that brings its tenant under
-- its cap again. Returns the tenant and the job's place in its backlog
-- (nil when the job held no slot).
local function stratq_fair_release_slot(base, queue, slot)
  local t, score = string.match(slot, '^(%S+) (%S+)')
  local st = stratq_fk(base, 'state')
  local running = redis.call('HINCRBY', st, 'run:' .. t, -1)
  if running <= 0 then
    redis.call('HDEL', st, 'run:' .. t)
  end
  -- A capped tenant's job that ends frees one place: its tenant may start
  -- one more job, so one parked ticket goes back (each end its own, so
  -- that two ends in a row give back two).
  local cap = select(2, stratq_fair_conf(base, t))
  if cap > 0 and running < cap and stratq_fair_refresh(base, t) then
    stratq_fair_unpark(base, queue, 1)
  end
  return t, score
end

-- stratq_fair_release_slot of the slot a job's hash holds, if any.
local function stratq_fair_release(base, queue, jobkey)
  local slot = redis.call('HGET', jobkey, 'slot')
  if not slot then
    return nil
  end
  redis.call('HDEL', jobkey, 'slot')
  return stratq_fair_release_slot(base, queue, slot)
end

-- Creates job id's hash and makes it wait (in its tenant's backlog with a
-- ticket on the queue, or, with no tenant, as its id on the queue) or,
-- with a run_at past now, schedules it; lists it in the `all` index and
-- publishes its status. k holds the keys: job, queue, all (index:all),
-- scheduled and sched_index (index:scheduled; only read for a later
-- run_at). a holds id, spec, now (ms, a string), events, publish, tenant
-- ("": none), priority, run_at (ms; 0 or past: now) and base. extra: more
-- field/value pairs for the job's hash (a Lua array). Returns 'queued' or
-- 'scheduled'. Shared by enqueue.lua and tick.lua.
local function stratq_enqueue(k, a, extra)
  local run_at = tonumber(a.run_at)
  if a.tenant ~= '' then
    redis.call('HSET', k.job, 'status', 'queued', 'spec', a.spec, 'attempts', 0, 'created_ms',
               a.now, 'tenant', a.tenant, 'priority', a.priority)
  else
    redis.call('HSET', k.job, 'status', 'queued', 'spec', a.spec, 'attempts', 0, 'created_ms',
               a.now)
  end
  stratq_hset(k.job, extra)
  redis.call('ZADD', k.all, a.now, a.id)
  if run_at > tonumber(a.now) then
    redis.call('HSET', k.job, 'status', 'scheduled', 'next_run_ms', run_at)
    redis.call('ZADD', k.scheduled, run_at, a.id)
    redis.call('ZADD', k.sched_index, a.now, a.id)
    stratq_publish(a.publish, a.events, cjson.encode({id = a.id, status = 'scheduled',
                                                      next_run_ms = run_at}))
    return 'scheduled'
  end
  if a.tenant ~= '' then
    stratq_fair_wait(a.base, k.queue, a.id, a.tenant, a.priority, nil, false)
  else
    redis.call('LPUSH', k.queue, a.id)
  end
  stratq_publish(a.publish, a.events, cjson.encode({id = a.id, status = 'queued'}))
  return 'queued'
end
