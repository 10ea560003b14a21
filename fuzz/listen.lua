-- require "listen" (fuzz/harness.c puts fuzz/ on package.path):
-- listen(name, open), where open(port) makes a server on 127.0.0.1:port
-- (nil, msg when it cannot).  Each server of a name takes the port of
-- the one before it (libuv binds with SO_REUSEADDR), so that a long run
-- does not use up the machine's ports with connections in TIME_WAIT;
-- the first takes port 0.  Returns the server and its port.
local ports = {}

return function(name, open)
  local srv = ports[name] and open(ports[name])
  if not srv then srv = assert(open(0)) end
  local _, port = srv:address()
  ports[name] = port
  return srv, port
end
