-- POST /verify/<token>: the confirm button, each pending signature's raw token used once.
-- wrk ... -s verify.lua URL -- TOKENS_FILE THREADS COOKIE CSRF
-- Thread i (1-based) takes lines i, i+THREADS, i+2*THREADS, ... of the file, so no two threads
-- share a token. A thread that runs out starts its slice again and counts it in "exhausted"
-- (the harness then flags the result: repeats take the cheaper already-confirmed path).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local tokens, body
local position = 0

function init(args)
  tokens, body = verify_slice(args[1], tonumber(args[2]), args[3], args[4])
end

function request()
  position = position + 1
  if position > #tokens then
    position = 1
    exhausted = exhausted + 1
  end
  return wrk.format("POST", "/verify/" .. tokens[position], nil, body)
end

function response(status, headers, body)
  count_status(status)
end
