-- A plain GET of the URL given to wrk (count endpoint, letter page, baseline).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

wrk.headers["Accept"] = "text/html,application/json"
