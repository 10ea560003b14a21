---@meta loom.fs
-- LuaCATS annotations for loom.fs: files and folders on libuv's thread
-- pool.  Every call suspends; failures are `nil, message, code`; calls
-- that produce no value return true.

---@class loom.fs
local fs = {}

---@alias loom.FileType "file"|"directory"|"link"|"fifo"|"socket"|"char"|"block"|"unknown"

---@class loom.Stat
---@field type loom.FileType
---@field size integer
---@field mode integer
---@field mtime number seconds
---@field atime number seconds
---@field ctime number seconds
---@field uid integer
---@field gid integer
---@field ino integer
---@field nlink integer

---@class loom.DirEntry
---@field name string
---@field type loom.FileType

---@alias loom.OpenMode "r"|"w"|"a"|"r+"|"w+"|"a+"|"rb"|"wb"|"ab"|"r+b"|"w+b"|"a+b"

---Opens a file, `mode` as `io.open` (default "r").
---@async
---@param path string
---@param mode? loom.OpenMode
---@return loom.File? file
---@return string? err
---@return loom.ErrorCode? code
function fs.open(path, mode) end

---The whole file; more than `opts.max` bytes is "EFBIG".
---@async
---@param path string
---@param opts? {max?: integer}
---@return string? data
---@return string? err
---@return loom.ErrorCode? code
function fs.read_file(path, opts) end

---Writes a temporary file in the same folder and renames it over `path`,
---so a crash never leaves a half-written file.
---@async
---@param path string
---@param data string
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function fs.write_file(path, data) end

---@async
---@param path string
---@param data string
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function fs.append_file(path, data) end

---@async
---@param path string
---@return loom.Stat? stat
---@return string? err
---@return loom.ErrorCode? code
function fs.stat(path) end

---As `fs.stat`, of a link itself.
---@async
---@param path string
---@return loom.Stat? stat
---@return string? err
---@return loom.ErrorCode? code
function fs.lstat(path) end

---True when something is there (a broken link too).
---@async
---@param path string
---@return boolean
function fs.exists(path) end

---@async
---@param path string
---@return loom.DirEntry[]? entries
---@return string? err
---@return loom.ErrorCode? code
function fs.list(path) end

---`for entry in fs.dir(path) do ... end`; raises when the folder cannot
---be listed.
---@async
---@param path string
---@return fun(): loom.DirEntry?
function fs.dir(path) end

---@async
---@param path string
---@param opts? {parents?: boolean, mode?: integer}
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function fs.mkdir(path, opts) end

---A file, a link, or a folder (its contents too with `recursive`).
---@async
---@param path string
---@param opts? {recursive?: boolean}
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function fs.remove(path, opts) end

---@async
---@param from string
---@param to string
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function fs.rename(from, to) end

---@async
---@param from string
---@param to string
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function fs.copy(from, to) end

---@async
---@param target string
---@param path string
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function fs.symlink(target, path) end

---@async
---@param path string
---@return string? target
---@return string? err
---@return loom.ErrorCode? code
function fs.readlink(path) end

---@async
---@param path string
---@return string? path
---@return string? err
---@return loom.ErrorCode? code
function fs.realpath(path) end

---@async
---@param path string
---@param mode integer from 0 to 0o7777, e.g. tonumber("644", 8)
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function fs.chmod(path, mode) end

---A new folder named `prefix` followed by random characters.
---@async
---@param prefix string
---@return string? path
---@return string? err
---@return loom.ErrorCode? code
function fs.mkdtemp(prefix) end

---A watcher: `for ev in w:events() do ... end`.
---@async
---@param path string
---@param opts? {recursive?: boolean}
---@return loom.Watcher? watcher
---@return string? err
---@return loom.ErrorCode? code
function fs.watch(path, opts) end

---An open file (fs.open). A closed file raises.
---@class loom.File
local File = {}

---Up to `n` bytes (default: a buffer's worth); `nil, msg, "EOF"` at the
---end.
---@async
---@param n? integer
---@return string? data
---@return string? err
---@return loom.ErrorCode? code
function File:read(n) end

---One line without its newline; `nil, msg, "EOF"` at the end.
---@async
---@return string? line
---@return string? err
---@return loom.ErrorCode? code
function File:read_line() end

---Everything from here to the end.
---@async
---@return string? data
---@return string? err
---@return loom.ErrorCode? code
function File:read_all() end

---`for line in f:lines() do ... end`; raises on failures other than EOF.
---@return async fun(): string?
function File:lines() end

---@async
---@param data string|number
---@param ... string|number
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function File:write(data, ...) end

---Moves the position, as `file:seek` of io; the new position.
---@param whence? "set"|"cur"|"end"
---@param offset? integer
---@return integer? position
---@return string? err
---@return loom.ErrorCode? code
function File:seek(whence, offset) end

---Flushes the file to the disk (fsync).
---@async
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function File:sync() end

---@async
---@return loom.Stat? stat
---@return string? err
---@return loom.ErrorCode? code
function File:stat() end

---Harmless the second time.
function File:close() end

---@class loom.WatchEvent
---@field path string
---@field change "rename"|"change"

---A file system watcher (fs.watch).
---@class loom.Watcher
local Watcher = {}

---`for ev in w:events() do ... end`: each step suspends until a change.
---@async
---@return async fun(): loom.WatchEvent?
function Watcher:events() end

function Watcher:close() end

return fs
