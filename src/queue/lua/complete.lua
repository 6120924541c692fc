-- Record a job's outcome, fenced on (worker, attempt): the result is
-- written only if the job is still in this worker's processing list, still
-- running, and still on the attempt this worker started. A worker whose job
-- was reaped and re-run elsewhere therefore never overwrites the result.
-- KEYS[1] job hash, KEYS[2] the worker's processing list
-- ARGV[1] id, ARGV[2] worker id, ARGV[3] attempt, ARGV[4] now (ms),
-- ARGV[5] events channel, ARGV[6] TTL of the record in seconds (0: keep),
-- ARGV[7] status, then field/value pairs (result, error, stdout, ...).
-- Returns 1 when recorded, 0 when fenced off.
local listed = redis.call('LPOS', KEYS[2], ARGV[1])
local fields = redis.call('HMGET', KEYS[1], 'status', 'worker', 'attempts')
if not listed or fields[1] ~= 'running' or fields[2] ~= ARGV[2] or fields[3] ~= ARGV[3] then
  -- A stale entry of ours for a job now run by another worker is dropped;
  -- so is one for a job no longer running; an entry for our own running
  -- attempt is left alone.
  if listed and (fields[2] ~= ARGV[2] or fields[1] ~= 'running') then
    redis.call('LREM', KEYS[2], 1, ARGV[1])
  end
  return 0
end
redis.call('LREM', KEYS[2], 1, ARGV[1])
redis.call('HSET', KEYS[1], 'status', ARGV[7], 'finished_ms', ARGV[4])
for i = 8, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
end
redis.call('PUBLISH', ARGV[5], cjson.encode({id = ARGV[1], status = ARGV[7]}))
return 1
