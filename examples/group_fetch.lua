-- group_fetch.lua: a group of fetch-like tasks where one fails; the
-- others are cancelled (their cleanup runs) and the error comes out of
-- the group once every task has finished.
local function fetch(url, seconds, fail)
  local ok, err = pcall(loom.sleep, seconds)  -- stands for the network
  if not ok then
    print("  cancelled: " .. url)
    error(err, 0)
  end
  if fail then error({ url = url, message = "connection reset" }) end
  print("  fetched: " .. url)
  return url
end

local _, err = pcall(loom.group, function(g)
  g:spawn(fetch, "https://example.org/a", 0.05)
  g:spawn(fetch, "https://example.org/b", 0.10, true)
  g:spawn(fetch, "https://example.org/c", 0.50)
  g:spawn(fetch, "https://example.org/d", 0.80)
end)
print(("group failed: %s (%s)"):format(err.url, err.message))
print(("tasks still alive: %d"):format(#loom.tasks() - 1))
