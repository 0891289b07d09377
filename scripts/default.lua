-- default.lua - the policy that ships with sluice.
--
-- Point lua_policy at this file, or copy it next to sluice.conf and
-- change it there; doc/lua-api.md describes every event and function.
--
-- It sorts messages into the queue classes of the default setup:
-- mail that carries bulk-mail headers is "newsletter", everything else
-- "transactional". It rejects nothing: relaying is decided by the
-- relay_from_hosts, relay_to_domains and local_domains lists.

-- Header fields that mark mail as bulk (RFC 2369, RFC 3834).
local bulk_headers = { "List-Unsubscribe", "List-Id" }

local function is_bulk(msg)
  for _, name in ipairs(bulk_headers) do
    if msg:header(name) ~= nil then
      return true
    end
  end
  local precedence = (msg:header("Precedence") or ""):lower()
  return precedence == "bulk" or precedence == "list"
end

sluice.on("message", function(msg)
  if is_bulk(msg) then
    msg.queue_class = "newsletter"
  else
    msg.queue_class = "transactional"
  end
end)

-- The scheduler's side. Without any of the lines below, sluice sends
-- from the egress_sources option, routes by MX and applies no limits
-- beyond the configuration's. Uncomment and adapt to take control.
--
-- Egress sources and pools (declared at the top level only):
--
-- sluice.source{ name = "ip1", ip = "192.0.2.10", ehlo = "out1.example.com" }
-- sluice.source{ name = "ip2", ip = "192.0.2.11", ehlo = "out2.example.com" }
-- sluice.pool{ name = "bulk", sources = { "ip2" } }
--
-- Queue classes; critical, transactional, personal and newsletter
-- exist unless redefined here:
--
-- sluice.class{ name = "newsletter", priority = 10, pool = "bulk" }
--
-- Sites: mail for domains hosted by Google shares Gmail's limits.
--
-- sluice.on("route", function(msg, domain, mx)
--   if mx[1] and mx[1].name:find("%.google%.com$") then
--     return { site = "gmail" }
--   end
-- end)
--
-- Limits per egress path (source x site), asked once per path:
--
-- sluice.on("shaping", function(path)
--   if path.site == "gmail" then
--     return { max_connections = 5, max_message_rate = "600/m", burst = 20 }
--   end
-- end)
--
-- Back off from a provider whose replies report too much traffic:
--
-- sluice.on("delivery_result", function(res)
--   if res.code == 421 and res.path and res.reply:find("rate") then
--     sluice.suspend(res.path, 1800, "421 rate limit at " .. res.site)
--   end
-- end)
