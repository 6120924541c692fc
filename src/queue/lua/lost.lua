-- One running job lost by its own worker (its executor died mid-job): the
-- same treatment the reaper gives a dead worker's jobs.
-- KEYS[1] the worker's processing list, KEYS[2] queue
-- ARGV[1] id, ARGV[2] worker id, ARGV[3] now (ms), ARGV[4] key prefix,
-- ARGV[5] events channel, ARGV[6] max deliveries, ARGV[7] index size limit,
-- ARGV[8] TTL (s) of a dead job's record
-- Returns 'requeued', 'dead' or '' (the job was no longer this worker's).
local what = stratq_lost(ARGV[4], KEYS[2], ARGV[5], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[6]),
                         tonumber(ARGV[7]), tonumber(ARGV[8]))
redis.call('LREM', KEYS[1], 1, ARGV[1])
return what or ''
