-- The first step of a listing page, newest first: the ids of an index (a
-- status's own, or index:all) after the cursor, which page.lua then reads.
-- KEYS[1] index zset (index:<status> or index:all)
-- ARGV[1] cursor score ("+inf" for the first page), ARGV[2] cursor id (""
-- for the first page), ARGV[3] how many ids to return
-- Returns {more, id, score, id, score, ...}: more is 1 when the index has
-- ids past the last one returned.
local key = KEYS[1]
local want = tonumber(ARGV[3])
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
local out = {0}
local n = 0
while n < want do
  local batch = redis.call('ZREVRANGE', key, start, start + want, 'WITHSCORES')
  if #batch == 0 then
    return out
  end
  for i = 1, #batch, 2 do
    local id, score = batch[i], batch[i + 1]
    if not (check_ties and score == cur_score and id >= cur_id) then
      if n == want then
        out[1] = 1
        return out
      end
      out[#out + 1] = id
      out[#out + 1] = score
      n = n + 1
    end
  end
  start = start + #batch / 2
end
if redis.call('ZCARD', key) > start then
  out[1] = 1
end
return out
