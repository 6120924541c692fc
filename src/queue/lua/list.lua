-- One page of a listing, newest first: the index of a status that has one
-- (the `indexed` property), or the `all` index, filtered by status when a
-- status without an index of its own is asked for.
-- KEYS[1] index zset (index:<status> or index:all)
-- ARGV[1] cursor score ("+inf" for the first page), ARGV[2] cursor id ("" for
-- the first page), ARGV[3] page size, ARGV[4] job key prefix, ARGV[5] the
-- status to list ("" for every job)
-- Reads the hashes of the ids it finds (ARGV[4] .. id): not declared,
-- since they are known only once the index is read, and read only. In
-- Redis Cluster they share the index's slot (the queue's hash tag); while
-- that slot migrates, a listing may fail and is retried by its caller.
-- Returns a flat array: the cursor to resume from (score, id; two empty
-- strings when the index has no more), then 8 entries per job: id, status,
-- attempts, created_ms, started_ms, finished_ms, worker, index score. A
-- page holds fewer than ARGV[3] jobs, with a cursor, when it looked at
-- 1000 + 10 per job asked for without filling up. Ids whose hash has
-- expired, and ids of a status index whose job has left that status, are
-- dropped from the index on the way.
local limit = tonumber(ARGV[3])
local want = ARGV[5]
local key = KEYS[1]
local filtered_all = want ~= '' and not stratq_is(want, 'indexed')
local budget = 1000 + 10 * limit
local out = {'', ''}
local n = 0
local cur_score, cur_id = ARGV[1], ARGV[2]
-- The page starts right after the cursor's job, by rank: jobs created in
-- the same millisecond (a batch) share a score, and however many there
-- are, none is skipped or repeated.
local start
if cur_id ~= '' then
  local rank = redis.call('ZREVRANK', key, cur_id)
  if rank then
    start = rank + 1
  end
end
-- The cursor's job has left the index (expired): resume at its score,
-- leaving out the ids with that score at or above it, which came before.
local check_ties = false
if not start then
  start = redis.call('ZCOUNT', key, '(' .. cur_score, '+inf')
  check_ties = cur_id ~= ''
end
local last_id, last_score
local examined = 0
local done = false
while n < limit and examined < budget do
  local batch = redis.call('ZREVRANGE', key, start, start + limit * 2, 'WITHSCORES')
  if #batch == 0 then
    done = true
    break
  end
  local removed = 0
  for i = 1, #batch, 2 do
    local id, score = batch[i], batch[i + 1]
    examined = examined + 1
    last_id, last_score = id, score
    if not (check_ties and score == cur_score and id >= cur_id) then
      local f = redis.call('HMGET', ARGV[4] .. id, 'status', 'attempts', 'created_ms',
                          'started_ms', 'finished_ms', 'worker')
      if not f[1] or (want ~= '' and not filtered_all and f[1] ~= want) then
        redis.call('ZREM', key, id)
        removed = removed + 1
      elseif want == '' or f[1] == want then
        for _, v in ipairs({id, f[1], f[2] or '', f[3] or '', f[4] or '', f[5] or '',
                            f[6] or '', score}) do
          out[#out + 1] = v
        end
        n = n + 1
      end
    end
    if n >= limit or examined >= budget then
      break
    end
  end
  -- Removing a member moved the ones after it up by one.
  start = start + #batch / 2 - removed
end
if not done and last_id then
  out[1], out[2] = last_score, last_id
end
return out
