-- The recurring jobs' schedules, for GET /v1/schedules and
-- GET /v1/schedules/{id}: each one's hash and its last job's status.
-- KEYS[1] schedules zset (by creation time)
-- ARGV[1] base, ARGV[2] a schedule's id ("": a page of every schedule,
-- oldest first, up to ARGV[3] of them read), ARGV[3] the most to read,
-- ARGV[4] the tenant whose schedules to return ("": every tenant's),
-- ARGV[5] where the page starts: "" for the first, else the cursor the
-- previous page handed back ("<created score>:<id>" of its last schedule)
-- Returns {next cursor ("" when no schedule follows), {field, value, ...},
-- ...}: each schedule's hash, with last_status (the last job's status,
-- when its record is still there). A page filtered by tenant may be
-- short, even empty, and still have a cursor.
-- Whether a sorts before b byte by byte (memcmp, as a zset orders equal
-- scores; Lua's < follows the locale).
local function stratq_bytes_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

local base, one, max, tenant, cursor = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local ids = {one}
local out = {''}
if one == '' then
  local start = 0
  if cursor ~= '' then
    local score, last = string.match(cursor, '^([^:]+):(.+)$')
    local rank = last and redis.call('ZRANK', KEYS[1], last)
    if rank then
      start = rank + 1
    elseif score then
      -- That schedule was deleted meanwhile: on from where it stood, among
      -- the ones made in the same ms by their ids' bytes, as the zset
      -- orders them.
      start = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. score)
      for _, m in ipairs(redis.call('ZRANGE', KEYS[1], score, score, 'BYSCORE')) do
        if stratq_bytes_before(m, last) then
          start = start + 1
        end
      end
    end
  end
  local page = redis.call('ZRANGE', KEYS[1], start, start + max - 1, 'WITHSCORES')
  ids = {}
  for i = 1, #page, 2 do
    ids[#ids + 1] = page[i]
  end
  if #ids == max and redis.call('ZCARD', KEYS[1]) > start + max then
    out[1] = page[#page] .. ':' .. page[#page - 1]
  end
end
for _, id in ipairs(ids) do
  local key = base .. ':schedule:' .. id
  local t = redis.call('HGET', key, 'tenant')
  if t and (tenant == '' or tenant == t) then
    local h = redis.call('HGETALL', key)
    local last = redis.call('HGET', key, 'last_job')
    local st = last and redis.call('HGET', base .. ':job:' .. last, 'status')
    if st then
      h[#h + 1] = 'last_status'
      h[#h + 1] = st
    end
    out[#out + 1] = h
  end
end
return out
