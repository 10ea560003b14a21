-- luarocks make: builds the 'loom' module (lua/loom.so, the C core with
-- its Lua parts embedded) with meson, which keeps the one list of
-- sources, and installs it into the tree's C module folder.  'loom.net',
-- 'loom.busted' and the other submodules are found in the same file.
rockspec_format = "3.0"
package = "loom"
version = "scm-1"
source = {
  url = "git+file://.",
}
description = {
  summary = "asyncio-style tasks for Lua 5.4 on libuv",
  detailed = [[
    Coroutines as tasks on a libuv loop: await, cancellation, timeouts,
    TCP/TLS/UDP, files, processes, signals, HTTP, and async tests for
    busted (loom.busted).
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
-- The C libraries (libuv, OpenSSL, libcurl, Debian's node-llhttp) are
-- found by meson through pkg-config, which also knows Debian's multiarch
-- include folders, and named by it when one is missing.
build = {
  type = "command",
  build_command = [[
    set -e
    rm -rf build-rock
    meson setup build-rock --buildtype=release >/dev/null
    meson compile -C build-rock lua/loom
  ]],
  install = {
    lib = { loom = "build-rock/lua/loom.so" },
  },
}
