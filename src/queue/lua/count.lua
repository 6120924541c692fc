-- Add counts to the stats hash: the API's submitted jobs, flushed about
-- once a second and before it answers GET /metrics.
-- KEYS[1] stats hash. ARGV field/increment pairs.
-- Returns 1.
for i = 1, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
