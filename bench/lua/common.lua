-- Shared by every case: GraphQL-level error counting and one JSON line of results.
local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

gql_errors = 0

function read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if line ~= "" then table.insert(lines, line) end
  end
  return lines
end

-- This thread's share of the lines of a file (args: path, thread count).
function thread_share(path, threads_total)
  local mine = {}
  for i, line in ipairs(read_lines(path)) do
    if (i - 1) % threads_total == id then table.insert(mine, line) end
  end
  return mine
end

function post(body, headers)
  headers = headers or {}
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", "/graphql", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  local gql = 0
  for _, t in ipairs(threads) do gql = gql + (t:get("gql_errors") or 0) end
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"errors":%d,"gql_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    gql, latency:percentile(50), latency:percentile(99), latency.mean))
end
