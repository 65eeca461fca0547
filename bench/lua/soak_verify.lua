-- The soak's verify phase: every token in TOKENS_FILE confirmed once through one app instance.
-- wrk ... -s soak_verify.lua URL -- TOKENS_FILE THREADS COOKIE CSRF MARKER_DIR NAME FILLER_PATH
-- Thread i (1-based) takes lines i, i+THREADS, ...; once they are sent it sends fillers (see
-- soak_sign.lua) and writes MARKER_DIR/<NAME>-<i> when its last answer has arrived.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local tokens = {}
local sent, answered = 0, 0
local body, marker, filler_path, filler

function init(args)
  local file, nthreads = args[1], tonumber(args[2])
  local line_number = 0
  for line in io.lines(file) do
    if line ~= "" and line_number % nthreads == id - 1 then
      table.insert(tokens, line)
    end
    line_number = line_number + 1
  end
  wrk.headers["Cookie"] = args[3]
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  body = "csrf_token=" .. args[4]
  marker, filler_path = args[5] .. "/" .. args[6] .. "-" .. id, args[7]
  if #tokens == 0 then
    io.open(marker, "w"):close()
  end
end

-- wrk calls request() once in the first thread before any connection exists, to check what
-- it returns; that call must not use up an address or token. The first call in thread 1 is
-- therefore always a filler: unsent if it was that check, answered 304 and ignored if not.
local checked = false

function request()
  if id == 1 and not checked then
    checked = true
    return wrk.format("GET", filler_path, { ["If-None-Match"] = "*" }, nil)
  end
  if sent >= #tokens then
    filler = filler or wrk.format("GET", filler_path, { ["If-None-Match"] = "*" }, nil)
    return filler
  end
  sent = sent + 1
  return wrk.format("POST", "/verify/" .. tokens[sent], nil, body)
end

function response(status, headers, body)
  if status == 304 then
    return
  end
  count_status(status)
  answered = answered + 1
  if answered == #tokens then
    io.open(marker, "w"):close()
  end
end

-- Fillers go out at most ten a second a connection: enough to keep it from sitting open
-- without a request (a sync gunicorn worker would wait on it until its timeout).
function delay()
  return sent >= #tokens and 100 or 0
end
