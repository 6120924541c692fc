-- The recurring jobs' schedules, for GET /v1/schedules and
-- GET /v1/schedules/{id}: each one's hash and its last job's status.
-- KEYS[1] schedules zset (by creation time)
-- ARGV[1] base, ARGV[2] a schedule's id ("": every schedule, oldest
-- first, up to ARGV[3]), ARGV[3] the most to return, ARGV[4] the tenant
-- whose schedules to return ("": every tenant's)
-- Returns {{field, value, ...}, ...}: each schedule's hash, with
-- last_status (the last job's status, when its record is still there).
local base, one, max, tenant = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local ids = {one}
if one == '' then
  ids = redis.call('ZRANGE', KEYS[1], 0, max - 1)
end
local out = {}
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
