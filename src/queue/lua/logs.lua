-- A job's output from byte offsets on, for GET /v1/jobs/{id}/logs. While
-- the job runs its output is in the live keys <job>:stdout and <job>:stderr
-- (appended by its worker); once it is finished, in the job hash. Its
-- structured log lines (ctx.log) are the list <job>:log.
-- KEYS[1] job hash, KEYS[2] its live stdout, KEYS[3] its live stderr,
-- KEYS[4] its log lines. ARGV[1] stdout offset, ARGV[2] stderr offset,
-- ARGV[3] index of the first log line.
-- Returns {status, stdout from offset, stderr from offset, stdout length,
-- stderr length, {log lines from the index}, number of log lines}, or {}
-- for an unknown job.
local f = redis.call('HMGET', KEYS[1], 'status', 'stdout', 'stderr')
if not f[1] then
  return {}
end
local out, err
if stratq_status[f[1]] and not stratq_is(f[1], 'terminal') then
  out = redis.call('GET', KEYS[2]) or ''
  err = redis.call('GET', KEYS[3]) or ''
else
  out = f[2] or ''
  err = f[3] or ''
end
local o1, o2 = tonumber(ARGV[1]), tonumber(ARGV[2])
local lines = redis.call('LRANGE', KEYS[4], tonumber(ARGV[3] or 0), -1)
local nlines = redis.call('LLEN', KEYS[4])
return {f[1], string.sub(out, o1 + 1), string.sub(err, o2 + 1), #out, #err, lines, nlines}
