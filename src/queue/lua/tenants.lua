-- Replace the tenants' configuration: weight:<tenant> and cap:<tenant>
-- (max_running) fields, "*" standing for every tenant not named. When it
-- changed, every known tenant is put where its new cap leaves it, and
-- parked entries go back to the queue to be taken or parked again. Every
-- API replica writes it every few seconds; the same configuration is no
-- change.
-- KEYS[1] queue
-- ARGV[1] base, then field value pairs
-- Returns the number of tenants known, or -1 when nothing changed.
local base = ARGV[1]
local config = stratq_fk(base, 'config')
local want = {}
local n = 0
for i = 2, #ARGV - 1, 2 do
  want[ARGV[i]] = ARGV[i + 1]
  n = n + 1
end
local have = redis.call('HGETALL', config)
local same = #have == 2 * n
for i = 1, #have - 1, 2 do
  same = same and want[have[i]] == have[i + 1]
end
if same then
  return -1
end
redis.call('DEL', config)
for i = 2, #ARGV - 1, 2 do
  redis.call('HSET', config, ARGV[i], ARGV[i + 1])
end
local tenants = redis.call('SMEMBERS', stratq_fk(base, 'tenants'))
for _, t in ipairs(tenants) do
  stratq_fair_refresh(base, t)
end
stratq_fair_unpark(base, KEYS[1], nil)
return #tenants
