-- wrk script for `make bench-api`: POST /v1/jobs with a small strategy job,
-- over keep-alive connections. done() prints one machine-readable line that
-- scripts/bench-api.sh reads.
wrk.method = "POST"
wrk.path = "/v1/jobs"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"code":"def run(ctx):\\n    return 1\\n"}'

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d "
      .. "mean_us=%.1f status_errors=%d connect_errors=%d read_errors=%d "
      .. "write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout))
end
