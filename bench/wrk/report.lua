-- Shared by the bench scripts: numbers each wrk thread, counts responses by
-- HTTP status per thread, and at the end prints ONE machine-readable line:
--   WRK_JSON {"requests":..,"ok":..,"non2xx":..,"latency_us":{..},..}
-- wrk's own "Non-2xx or 3xx responses" counts only statuses >= 400; bench
-- targets count every non-2xx answer (a 3xx redirect is a failed request too).
local M = {}
local threads = {}

function M.setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

statuses = {}

-- A paced client's pause before its next request: a random 0.5..1.5 x pace_ms
-- (0: a closed loop, the next request as soon as the answer came).
function M.pause(pace_ms)
  if pace_ms <= 0 then return 0 end
  return math.floor(pace_ms * (0.5 + math.random()))
end

function M.response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function M.done(summary, latency, requests)
  local ok, non2xx, max_counter = 0, 0, 0
  local counts = {}
  for _, thread in ipairs(threads) do
    -- Scripts that number their requests keep a global `counter`: the most
    -- any thread generated bounds the data a run can have sent.
    max_counter = math.max(max_counter, thread:get("counter") or 0)
    for code, n in pairs(thread:get("statuses") or {}) do
      counts[#counts + 1] = string.format('"%d":%d', code, n)
      if code >= 200 and code < 300 then ok = ok + n else non2xx = non2xx + n end
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"ok":%d,"non2xx":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,"status_errors":%d,' ..
    '"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p95":%d,"p99":%d,"p999":%d},"statuses":{%s},"max_counter":%d}\n',
    summary.requests, summary.duration, summary.bytes, ok, non2xx,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99), latency:percentile(99.9),
    table.concat(counts, ","), max_counter))
end

return M
