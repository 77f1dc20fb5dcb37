-- Runs an Argo CD health.lua against one object, the way Argo CD does: the object (JSON on stdin,
-- decoded with dkjson; null becomes nil as in Argo CD's conversion) is the global `obj`, the chunk's
-- return value is the health, and only the libraries Argo CD opens for health scripts are there
-- (base, table, string, math; no io, os or require). Prints {"status":..,"message":..}.
--   lua5.1 hack/argocd-health.lua config/argocd/resource_customizations/netwarden.io/DropTail/health.lua < droptail.json
-- Runs on Lua 5.1 (the dialect of gopher-lua, Argo CD's interpreter) and on 5.4.
local json = require("dkjson")
local script = arg[1]
if script == nil then
  io.stderr:write("usage: lua hack/argocd-health.lua HEALTH_LUA < OBJECT_JSON\n")
  os.exit(2)
end
local value, _, err = json.decode(io.read("*a"), 1, nil)
if err ~= nil then
  io.stderr:write("cannot decode the object: " .. err .. "\n")
  os.exit(2)
end
local env = {
  obj = value,
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall, select = select,
  tonumber = tonumber, tostring = tostring, type = type, unpack = unpack or table.unpack,
  string = string, table = table, math = math,
}
local chunk, loadErr
if setfenv ~= nil then
  chunk, loadErr = loadfile(script)
  if chunk ~= nil then setfenv(chunk, env) end
else
  chunk, loadErr = loadfile(script, "t", env)
end
if chunk == nil then
  io.stderr:write(loadErr .. "\n")
  os.exit(2)
end
local ok, hs = pcall(chunk)
if not ok then
  io.stderr:write("health script failed: " .. tostring(hs) .. "\n")
  os.exit(1)
end
if type(hs) ~= "table" then
  io.stderr:write("health script returned " .. type(hs) .. ", not a table\n")
  os.exit(1)
end
io.write(json.encode({ status = hs.status, message = hs.message }), "\n")
