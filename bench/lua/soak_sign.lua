-- The soak's sign phase: exactly TOTAL signatures through one app instance, then stop.
-- wrk ... -s soak_sign.lua URL -- PATH COOKIE CSRF PREFIX TOTAL THREADS MARKER_DIR FILLER_PATH
-- Thread i signs its share (TOTAL split evenly over THREADS) as PREFIX-<i>-<n>@example.org with
-- share_email set, so the export lists every address. Once its share is sent, a connection
-- sends "fillers" (a conditional GET of FILLER_PATH answered 304, not counted; at most 10/s)
-- and the thread writes MARKER_DIR/<PREFIX>-<i> when its last answer has arrived. The harness
-- interrupts wrk (SIGINT) once every thread has written its marker: the phase's duration is
-- the harness's own clock. (wrk.thread:stop() would leave sockets connected without a request,
-- each holding a sync gunicorn worker until its timeout.)
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local path, prefix, csrf, marker, filler_path
local quota, sent, answered = 0, 0, 0
local filler

function init(args)
  path, csrf, prefix = args[1], args[3], args[4]
  local total, nthreads = tonumber(args[5]), tonumber(args[6])
  marker, filler_path = args[7] .. "/" .. prefix .. "-" .. id, args[8]
  quota = math.floor(total / nthreads) + ((id <= total % nthreads) and 1 or 0)
  if quota == 0 then
    io.open(marker, "w"):close()
  end
  wrk.headers["Cookie"] = args[2]
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
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
  if sent >= quota then
    filler = filler or wrk.format("GET", filler_path, { ["If-None-Match"] = "*" }, nil)
    return filler
  end
  sent = sent + 1
  local body = "csrf_token=" .. csrf ..
    "&name=Soak+Signer+" .. prefix .. "+" .. id .. "+" .. sent ..
    "&email=" .. prefix .. "-" .. id .. "-" .. sent .. "%40example.org" ..
    "&show_name=y&share_email=y"
  return wrk.format("POST", path, nil, body)
end

function response(status, headers, body)
  if status == 304 then
    return
  end
  count_status(status)
  answered = answered + 1
  if answered == quota then
    io.open(marker, "w"):close()
  end
end

-- Fillers go out at most ten a second a connection: enough to keep it from sitting open
-- without a request (a sync gunicorn worker would wait on it until its timeout).
function delay()
  return sent >= quota and 100 or 0
end
