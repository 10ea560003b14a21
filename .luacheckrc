-- luacheck's view of loom: Lua 5.4, and no global beyond those the host
-- defines.  The loom binary sets `loom` (and `arg`, which Lua's standard
-- interpreter sets too) for the scripts it runs; lua/loom's modules and
-- the specs reach loom through require only.
std = "lua54"
-- STYLE.md's 80 columns; the specs, with their long expected messages
-- and test names, keep to 120
max_line_length = 80

ignore = {
  -- 'not (x >= 0)' is how loom's argument checks refuse NaN along with
  -- the negatives: the 'x < 0' that W581 proposes would let NaN through
  "581",
  -- a to-be-closed variable that is there only to be closed is named
  -- with a leading underscore, as luacheck already lets arguments be
  "211/_.*",
}

files["examples/"] = { read_globals = { "loom" } }
-- the embedding example's program gives its script a `sensor` table
files["examples/embed/sensor.lua"] = { read_globals = { "loom", "sensor" } }
files["bench/"] = { read_globals = { "loom" } }
files["fuzz/"] = { read_globals = { "loom" } }
files["spec/"] = { std = "+busted", max_line_length = 120 }
