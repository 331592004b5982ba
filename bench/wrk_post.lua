-- wrk script of the gateway ingest benchmark: POSTs pre-signed webhook bodies.
-- BENCH_BODIES names a file of lines "<X-Hub-Signature-256>\t<JSON body>"; thread k
-- of n sends lines k, k+n, k+2n, ... in turn (every body once, unless the run
-- outlasts the file: then it wraps and reports how often).
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  local path = os.getenv("BENCH_BODIES")
  requests_list = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == id then
      local tab = line:find("\t", 1, true)
      local sig = line:sub(1, tab - 1)
      local body = line:sub(tab + 1)
      table.insert(requests_list, wrk.format("POST", wrk.path, {
        ["Content-Type"] = "application/json",
        ["X-Hub-Signature-256"] = sig,
      }, body))
    end
    i = i + 1
  end
  cursor = 0
  wraps = 0
  non2xx = 0
end

function request()
  cursor = cursor + 1
  if cursor > #requests_list then
    cursor = 1
    wraps = wraps + 1
  end
  return requests_list[cursor]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local wrapped, bad = 0, 0
  for _, t in ipairs(threads) do
    wrapped = wrapped + (t:get("wraps") or 0)
    bad = bad + (t:get("non2xx") or 0)
  end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "errors_connect": %d, ' ..
    '"errors_read": %d, "errors_timeout": %d, "errors_status": %d, "non2xx": %d, ' ..
    '"wraps": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.timeout, summary.errors.status, bad, wrapped,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
