-- Sends the SIGN-IN-WITH-X headers of a file (one a line) in turn, from the first again after the
-- last: a fresh signature on each request, as the official client signs each one.
--   wrk -t1 -c32 -d10s -s bench/wrk/siwx.lua URL -- <headers file>
local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
dofile(here .. "report.lua")

local headers, i = {}, 0

init = function(args)
  for line in io.lines(args[1]) do
    if #line > 0 then headers[#headers + 1] = line end
  end
  assert(#headers > 0, "no SIGN-IN-WITH-X header in " .. args[1])
end

request = function()
  i = i % #headers + 1
  return wrk.format(nil, nil, { ["SIGN-IN-WITH-X"] = headers[i] })
end
