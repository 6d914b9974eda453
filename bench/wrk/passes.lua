-- Sends every pass of a file (one token a line) exactly once, as `Authorization: Bearer`:
--   wrk -t1 -c32 -d600s -s bench/wrk/passes.lua URL -- <tokens file> <marker file>
-- At the end of the file the thread stops and writes the marker file; bench/run.py then
-- interrupts wrk (its main thread otherwise sleeps for the whole -d), which prints the results.
local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
dofile(here .. "report.lua")

local file, marker, last

init = function(args)
  file = assert(io.open(args[1], "r"))
  marker = args[2]
end

request = function()
  local token = file:read("*l")
  if token == nil then
    if marker then
      local m = io.open(marker, "w")
      if m then m:write("done\n"); m:close() end
      marker = nil
    end
    wrk.thread:stop()
    token = last
  end
  last = token
  return wrk.format(nil, nil, { Authorization = "Bearer " .. token })
end
