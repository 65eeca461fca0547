-- Shared by soak_sign.lua and soak_verify.lua: a thread sends exactly its share of POSTs, then
-- only "fillers" (a conditional GET of the filler path, answered 304, not counted, at most
-- 10/s a connection), and writes its marker file once the last answer to its share arrived.
-- The script calls soak_start(share, marker, filler_path) from init() and defines
-- soak_request(n), the n-th POST of the thread's share (1-based).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local share, marker, filler_path, filler = 0, nil, nil, nil
local sent, answered = 0, 0

function soak_start(thread_share, thread_marker, path)
  share, marker, filler_path = thread_share, thread_marker, path
  if share == 0 then
    io.open(marker, "w"):close()
  end
end

local function filler_request()
  filler = filler or wrk.format("GET", filler_path, { ["If-None-Match"] = "*" }, nil)
  return filler
end

-- wrk calls request() once in the first thread before any connection exists, to check what
-- it returns; that call must not use up an address or token. The first call in thread 1 is
-- therefore always a filler: unsent if it was that check, answered 304 and ignored if not.
local checked = false

function request()
  if id == 1 and not checked then
    checked = true
    return filler_request()
  end
  if sent >= share then
    return filler_request()
  end
  sent = sent + 1
  return soak_request(sent)
end

function response(status, headers, body)
  if status == 304 then
    return
  end
  count_status(status)
  answered = answered + 1
  if answered == share then
    io.open(marker, "w"):close()
  end
end

-- Fillers keep a connection from sitting open without a request (a sync gunicorn worker would
-- wait on it until its timeout).
function delay()
  return sent >= share and 100 or 0
end
