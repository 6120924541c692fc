-- One page of a listing index, newest first.
-- KEYS[1] index zset (<prefix>:index:<status or "all">)
-- ARGV[1] cursor score ("+inf" for the first page), ARGV[2] cursor id ("" for
-- the first page), ARGV[3] page size, ARGV[4] job key prefix ("stratq:job:")
-- Returns a flat array, 8 entries per job: id, status, attempts,
-- created_ms, started_ms, finished_ms, worker, index score. Ids whose hash
-- has expired are dropped from the index on the way.
local limit = tonumber(ARGV[3])
local key = KEYS[1]
local out = {}
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
while n < limit do
  local batch = redis.call('ZREVRANGE', key, start, start + limit * 2, 'WITHSCORES')
  if #batch == 0 then
    break
  end
  local removed = 0
  for i = 1, #batch, 2 do
    local id, score = batch[i], batch[i + 1]
    if not (check_ties and score == cur_score and id >= cur_id) then
      local f = redis.call('HMGET', ARGV[4] .. id, 'status', 'attempts', 'created_ms',
                          'started_ms', 'finished_ms', 'worker')
      if not f[1] then
        redis.call('ZREM', key, id)
        removed = removed + 1
      else
        for _, v in ipairs({id, f[1], f[2] or '', f[3] or '', f[4] or '', f[5] or '',
                            f[6] or '', score}) do
          out[#out + 1] = v
        end
        n = n + 1
        if n >= limit then
          break
        end
      end
    end
  end
  -- Removing a member moved the ones after it up by one.
  start = start + #batch / 2 - removed
end
return out
