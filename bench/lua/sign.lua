-- POST /letters/<slug>/sign with a valid CSRF token and a new address for every request.
-- wrk ... -s sign.lua URL -- PATH COOKIE CSRF PREFIX
-- The Cookie header (the session that holds the CSRF secret) and the token come from one GET
-- of the letter page (bench/harness.py); every address is PREFIX-<thread>-<n>@example.org.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local path, prefix, csrf
local counter = 0

function init(args)
  path, prefix, csrf = args[1], args[4], args[3]
  wrk.headers["Cookie"] = args[2]
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  counter = counter + 1
  local body = "csrf_token=" .. csrf ..
    "&name=Bench+Signer+" .. id .. "+" .. counter ..
    "&email=" .. prefix .. "-" .. id .. "-" .. counter .. "%40example.org" ..
    "&show_name=y"
  return wrk.format("POST", path, nil, body)
end

function response(status, headers, body)
  count_status(status)
end
