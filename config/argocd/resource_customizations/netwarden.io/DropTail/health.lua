-- Argo CD health of a netwarden.io DropTail (docs/integrations.md). Lua 5.1, as Argo CD runs it.
-- Progressing until the controller has seen this generation; Degraded when Ready is False (an
-- invalid spec, or every reporting node's source failing); else Healthy, naming unhealthy nodes:
-- one node's problem is an alert (netwarden_agent_droptail_source_healthy), not a broken app.
local hs = {}
local status = obj.status
local generation = (obj.metadata and obj.metadata.generation) or 0
if status == nil or status.observedGeneration == nil or status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Netwarden controller to observe generation " .. string.format("%d", generation)
  return hs
end
local ready = nil
for _, c in ipairs(status.conditions or {}) do
  if c.type == "Ready" then ready = c end
end
if ready == nil or ready.status == "Unknown" or (ready.observedGeneration or generation) < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition of generation " .. string.format("%d", generation)
  return hs
end
if ready.status ~= "True" then
  hs.status = "Degraded"
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
  return hs
end
hs.status = "Healthy"
hs.message = ready.message or ""
local unhealthy = status.unhealthyNodes or 0
if unhealthy > 0 then
  hs.message = string.format("%d of %d node(s) unhealthy", unhealthy, status.nodeCount or 0)
  local newest = (status.problems or {})[1]
  if newest ~= nil then hs.message = hs.message .. "; newest: " .. newest.node .. ": " .. newest.message end
end
return hs
