-- fuzz/stream_reader.c's task: the reads 'ops' on the stream 's', each
-- one's values packed (table.pack) in a list.  After a line over the
-- limit ("ELINE"), every read is a read_line.
local s, ops, limit = ...
s:limits { line = limit }
local out, lined = {}, false
for i, op in ipairs(ops) do
  local k, a = op[1], op[2]
  local r
  if k == "line" or lined then r = table.pack(s:read_line())
  elseif k == "until" then r = table.pack(s:read_until(a))
  elseif k == "exactly" then r = table.pack(s:read_exactly(a))
  elseif k == "read" and a == 0 then r = table.pack(s:read())
  elseif k == "read" then r = table.pack(s:read(a))
  else r = table.pack(s:read_all()) end
  if r[3] == "ELINE" then lined = true end
  out[i] = r
end
s:close()
return out
