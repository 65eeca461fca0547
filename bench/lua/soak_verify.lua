-- The soak's verify phase: every token in TOKENS_FILE confirmed once through one app instance.
-- wrk ... -s soak_verify.lua URL -- TOKENS_FILE THREADS COOKIE CSRF MARKER_DIR NAME FILLER_PATH
-- Thread i (1-based) takes lines i, i+THREADS, ...; once they are sent it sends fillers and
-- writes MARKER_DIR/<NAME>-<i> when its last answer has arrived (soak_phase.lua).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "soak_phase.lua")

local tokens, body

function init(args)
  tokens, body = verify_slice(args[1], tonumber(args[2]), args[3], args[4])
  soak_start(#tokens, args[5] .. "/" .. args[6] .. "-" .. id, args[7])
end

function soak_request(n)
  return wrk.format("POST", "/verify/" .. tokens[n], nil, body)
end
