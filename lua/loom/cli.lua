--[[ loom.cli: the body of the binary's main task.  It runs what the
  command line asked for, in order: '-l' modules, '-e' chunks and the
  script, so that all of them may suspend.
]]
return function(steps)
  for i = 1, #steps do
    local step = steps[i]
    if step.module then
      _G[step.global] = require(step.module)
    else
      step.fn(table.unpack(step, 1, step.n or 0))
    end
  end
end
