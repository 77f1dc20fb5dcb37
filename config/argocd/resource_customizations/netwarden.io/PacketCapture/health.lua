-- Argo CD health of a netwarden.io PacketCapture (docs/integrations.md). Lua 5.1, as Argo CD runs it.
--   Progressing  the controller has not seen this generation yet, or no agent has started;
--   Suspended    Scheduled (waits for startTime) or held back by a capture quota (Queued, or some
--                nodes held): it waits for something outside it and starts by itself;
--   Healthy      WaitingForTraffic and Capturing (doing what the spec asks; a capture without an
--                end would otherwise stay Progressing for ever), Finished and Stopped (the files
--                are there to download);
--   Degraded     Failed (refused, or every node errored), or Ready False for another reason.
local hs = {}
local status = obj.status
local generation = (obj.metadata and obj.metadata.generation) or 0
if status == nil or status.observedGeneration == nil or status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Netwarden controller to observe generation " .. string.format("%d", generation)
  return hs
end
local ready, verified = nil, nil
for _, c in ipairs(status.conditions or {}) do
  if c.type == "Ready" then ready = c end
  if c.type == "TargetsVerified" then verified = c end
end
local phase = status.phase
local readyMessage = (ready and ready.message) or ""
if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Failed: " .. readyMessage
  return hs
end
if ready ~= nil and ready.status == "False" then
  if ready.reason == "QuotaExceeded" then
    hs.status = "Suspended"
    hs.message = (phase or "Queued") .. ", held by a capture quota: " .. readyMessage
  else
    hs.status = "Degraded"
    hs.message = (ready.reason or "NotReady") .. ": " .. readyMessage
  end
  return hs
end
local summary = string.format("%d pod(s), %d file(s), %d bytes", status.podCount or 0, status.fileCount or 0, status.totalBytes or 0)
if phase == "Scheduled" then
  hs.status = "Suspended"
  hs.message = "Scheduled: starts at " .. ((obj.spec and obj.spec.startTime) or "its startTime")
elseif phase == "Queued" then
  hs.status = "Suspended"
  hs.message = "Queued: " .. readyMessage
elseif phase == "WaitingForTraffic" or phase == "Capturing" then
  hs.status = "Healthy"
  hs.message = phase .. ": " .. summary
elseif phase == "Finished" or phase == "Stopped" then
  hs.status = "Healthy"
  hs.message = phase .. ": " .. summary
  if readyMessage ~= "" then hs.message = hs.message .. "; " .. readyMessage end
else
  hs.status = "Progressing"
  hs.message = "Waiting for the capture to start"
  return hs
end
-- Some targets not captured (an IP no pod of the namespace owns on its node): said, not failed.
if verified ~= nil and verified.status == "False" then hs.message = hs.message .. "; " .. (verified.message or "") end
return hs
