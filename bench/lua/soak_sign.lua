-- The soak's sign phase: exactly TOTAL signatures through one app instance, then stop.
-- wrk ... -s soak_sign.lua URL -- PATH COOKIE CSRF PREFIX TOTAL THREADS MARKER_DIR FILLER_PATH
-- Thread i signs its share (TOTAL split evenly over THREADS) as PREFIX-<i>-<n>@example.org with
-- share_email set, so the export lists every address. Once its share is sent, a connection
-- sends fillers and the thread writes MARKER_DIR/<PREFIX>-<i> when its last answer has arrived
-- (soak_phase.lua). The harness interrupts wrk (SIGINT) once every thread has written its
-- marker: the phase's duration is the harness's own clock. (wrk.thread:stop() would leave
-- sockets connected without a request, each holding a sync gunicorn worker until its timeout.)
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "soak_phase.lua")

local path, prefix, csrf

function init(args)
  path, csrf, prefix = args[1], args[3], args[4]
  local total, nthreads = tonumber(args[5]), tonumber(args[6])
  local share = math.floor(total / nthreads) + ((id <= total % nthreads) and 1 or 0)
  wrk.headers["Cookie"] = args[2]
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  soak_start(share, args[7] .. "/" .. prefix .. "-" .. id, args[8])
end

function soak_request(n)
  local body = "csrf_token=" .. csrf ..
    "&name=Soak+Signer+" .. prefix .. "+" .. id .. "+" .. n ..
    "&email=" .. prefix .. "-" .. id .. "-" .. n .. "%40example.org" ..
    "&show_name=y&share_email=y"
  return wrk.format("POST", path, nil, body)
end
