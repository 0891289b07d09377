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
