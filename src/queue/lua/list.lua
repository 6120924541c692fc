-- One page of a listing index, newest first.
-- KEYS[1] index zset (<prefix>:index:<status or "all">)
-- ARGV[1] cursor score ("+inf" for the first page), ARGV[2] cursor id ("" for
-- the first page), ARGV[3] page size, ARGV[4] job key prefix ("stratq:job:")
-- Returns a flat array, 8 entries per job: id, status, attempts,
-- created_ms, started_ms, finished_ms, worker, index score. Ids whose hash
-- has expired are dropped from the index on the way.
local limit = tonumber(ARGV[3])
local out = {}
local n = 0
local max = ARGV[1]
local skip_id = ARGV[2]
while n < limit do
  local batch = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf', 'WITHSCORES', 'LIMIT', 0,
                           limit * 2 + 1)
  if #batch == 0 then
    break
  end
  local progressed = false
  for i = 1, #batch, 2 do
    local id, score = batch[i], batch[i + 1]
    -- Members with the cursor's own score come in reverse id order; those
    -- at or above the cursor id were on an earlier page.
    if skip_id ~= '' and score == max and id >= skip_id then
      -- already returned
    else
      progressed = true
      local f = redis.call('HMGET', ARGV[4] .. id, 'status', 'attempts', 'created_ms',
                          'started_ms', 'finished_ms', 'worker')
      if not f[1] then
        redis.call('ZREM', KEYS[1], id)
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
      max = score
      skip_id = id
    end
  end
  if not progressed then
    break
  end
end
return out
