-- Record a queue entry no worker can run: not a valid id, or an id with no
-- job hash. The entry is taken off the worker's processing list and kept,
-- with its reason, in the capped dead-letter list.
-- KEYS[1] the worker's processing list, KEYS[2] dead-letter list
-- ARGV[1] the entry (exact bytes), ARGV[2] reason, ARGV[3] now (ms),
-- ARGV[4] worker id, ARGV[5] cap of the dead-letter list
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('LPUSH', KEYS[2], cjson.encode({entry = string.sub(ARGV[1], 1, 200),
                                           reason = ARGV[2], time_ms = tonumber(ARGV[3]),
                                           worker = ARGV[4]}))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
return 1
