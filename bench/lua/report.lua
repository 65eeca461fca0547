-- Shared by every bench script: numbers each wrk thread and, when the run ends, prints one
-- line "BENCH_RESULT {json}" that bench/wrk.py parses (latencies in microseconds).
-- A script that wants exact status codes calls count_status(status) from its response().

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

statuses = {}
exhausted = 0

-- The verify scripts: this thread's slice of TOKENS_FILE (lines id, id+THREADS, ..., so no two
-- threads share a token), with the confirm POST's session cookie; returns the tokens and the
-- form body that carries the CSRF token.
function verify_slice(file, nthreads, cookie, csrf)
  local tokens, line_number = {}, 0
  for line in io.lines(file) do
    if line ~= "" and line_number % nthreads == id - 1 then
      table.insert(tokens, line)
    end
    line_number = line_number + 1
  end
  wrk.headers["Cookie"] = cookie
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  return tokens, "csrf_token=" .. csrf
end

function count_status(status)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

local function json_object(map)
  local parts = {}
  for key, value in pairs(map) do
    table.insert(parts, string.format("%q:%d", key, value))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local merged = {}
  local wrapped = 0
  for _, thread in ipairs(threads) do
    local seen = thread:get("statuses") or {}
    for key, value in pairs(seen) do
      merged[key] = (merged[key] or 0) + value
    end
    wrapped = wrapped + (thread:get("exhausted") or 0)
  end
  local errors = summary.errors
  local percentiles = {}
  for _, p in ipairs({ 50, 75, 90, 99, 99.9 }) do
    table.insert(percentiles, string.format("%q:%d", tostring(p), latency:percentile(p)))
  end
  io.write(string.format(
    "BENCH_RESULT {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d," ..
    "\"errors\":{\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d}," ..
    "\"latency_us\":{\"min\":%d,\"mean\":%.1f,\"stdev\":%.1f,\"max\":%d,\"percentiles\":{%s}}," ..
    "\"statuses\":%s,\"exhausted\":%d}\n",
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.min, latency.mean, latency.stdev, latency.max, table.concat(percentiles, ","),
    json_object(merged), wrapped
  ))
end
