-- The second step of a listing page: the jobs of the ids list.lua found,
-- filtered by status and tenant. Ids whose hash has expired, and ids of a
-- status index whose job has left that status, are dropped from the index.
-- KEYS[1] the index list.lua read, KEYS[2..] the ids' job hashes
-- ARGV[1] the status to list ("" for every job), ARGV[2] "1" when KEYS[1]
-- is that status's own index, ARGV[3] page size, ARGV[4] list.lua's more
-- flag, ARGV[5] the tenant to list ("" for every tenant), then an id and
-- its score for each of KEYS[2..]
-- Returns a flat array: the cursor to resume from (score, id; two empty
-- strings at the end of the index), then 9 entries per job: id, status,
-- attempts, created_ms, started_ms, finished_ms, worker, index score,
-- tenant ("" for a job with none). A page holds fewer jobs than asked,
-- with a cursor, when the ids it was given ran out first.
local want, own, limit, tenant = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3]), ARGV[5]
local out = {'', ''}
local n = 0
local last = 0
for k = 2, #KEYS do
  local id, score = ARGV[4 + 2 * (k - 1)], ARGV[5 + 2 * (k - 1)]
  if n >= limit then
    break
  end
  last = k
  local f = redis.call('HMGET', KEYS[k], 'status', 'attempts', 'created_ms', 'started_ms',
                       'finished_ms', 'worker', 'tenant')
  if not f[1] or (own and f[1] ~= want) then
    redis.call('ZREM', KEYS[1], id)
  elseif (want == '' or f[1] == want) and (tenant == '' or f[7] == tenant) then
    for _, v in ipairs({id, f[1], f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or '',
                        score, f[7] or ''}) do
      out[#out + 1] = v
    end
    n = n + 1
  end
end
-- More to read: the ids given past the last one read, or the index's.
if last > 0 and (last < #KEYS or ARGV[4] == '1') then
  out[1], out[2] = ARGV[5 + 2 * (last - 1)], ARGV[4 + 2 * (last - 1)]
end
return out
