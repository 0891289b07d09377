/*
 * policy_sandbox.c - the environment policy code runs in.
 *
 * The environment is a fresh table holding an allow list of the
 * standard library: no os.execute, os.exit, io.popen, dofile,
 * loadfile, debug, ffi, getfenv, setfenv, string.dump, newproxy,
 * collectgarbage or print. It also becomes the thread's globals table,
 * so a function compiled later cannot reach the real one.
 *
 * Replacements:
 *  - require(name) loads NAME.lua (dots become slashes) from the
 *    folders of lua_path, as text, into the sandbox. New modules load
 *    only while the policy loads; a loaded one is returned at any time.
 *  - load(text [, name]) and loadstring compile text only, never
 *    bytecode, into the sandbox.
 *  - io.open(path [, "r"]) reads files while the policy loads; the file
 *    object refuses every method once loading has ended.
 *  - os.time() without an argument is sluice's clock (the fake clock
 *    in tests), as sluice.now().
 *  - jit has only status, version, os and arch.
 * sluice is a read-only view of the library table.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "clock.h"
#include "policy_private.h"
#include "util.h"

/* Globals copied from the standard library as they are. */
static const char *const policy_sandbox_globals[] = {
	"assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal",
	"rawget", "rawset", "select", "setmetatable", "getmetatable",
	"tonumber", "tostring", "type", "unpack", "xpcall", "_VERSION",
	"coroutine", "table", "math", "bit", NULL,
};

static const char *const policy_sandbox_os[] = {
	"clock", "date", "difftime", NULL,
};

static const char *const policy_sandbox_jit[] = {
	"status", "version", "os", "arch", NULL,
};

/* The io wrapper, compiled in the real globals. Its arguments are the
 * real io.open and a C function that raises outside the load phase.
 * The real file handles live in a table that only these closures see. */
static const char policy_sandbox_io_source[] =
	"local real_open, check_loading = ...\n"
	"local files = setmetatable({}, { __mode = 'k' })\n"
	"local File = {}\n"
	"local meta = { __index = File, __metatable = 'sluice file' }\n"
	"local function handle(self, what)\n"
	"  check_loading(what)\n"
	"  local f = files[self]\n"
	"  if f == nil then error(what .. ': not a file', 3) end\n"
	"  return f\n"
	"end\n"
	"function File.read(self, ...) return handle(self, 'file:read()'):read(...) end\n"
	"function File.seek(self, ...) return handle(self, 'file:seek()'):seek(...) end\n"
	"function File.close(self) return handle(self, 'file:close()'):close() end\n"
	"function File.lines(self, ...)\n"
	"  local next_line = handle(self, 'file:lines()'):lines(...)\n"
	"  return function() check_loading('file:lines()') return next_line() end\n"
	"end\n"
	"local function open(path, mode)\n"
	"  check_loading('io.open()')\n"
	"  if type(path) ~= 'string' then error('io.open: the path must be a string', 2) end\n"
	"  mode = mode or 'r'\n"
	"  if mode ~= 'r' and mode ~= 'rb' then\n"
	"    error('io.open: only mode \"r\" is allowed', 2)\n"
	"  end\n"
	"  local f, message = real_open(path, mode)\n"
	"  if f == nil then return nil, message end\n"
	"  local proxy = setmetatable({}, meta)\n"
	"  files[proxy] = f\n"
	"  return proxy\n"
	"end\n"
	"return { open = open }\n";

/* Raises unless the policy is loading; the argument names the function
 * for the message. */
static int
policy_sandbox_check_loading(lua_State *L)
{
	policy_state_check_phase(L, 1u << POLICY_PHASE_LOAD,
	    luaL_optstring(L, 1, "this function"));
	return 0;
}

/* Sets the function on top of the stack to run in the sandbox. */
static void
policy_sandbox_set_env(lua_State *L, struct policy_state *ps)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, ps->env_ref);
	lua_setfenv(L, -2);
}

/* Loads text as a chunk into the sandbox; returns 0 with the chunk on
 * the stack, or -1 with the message. */
static int
policy_sandbox_load_text(lua_State *L, struct policy_state *ps,
    const char *text, size_t len, const char *name)
{
	/* Mode "t" makes LuaJIT refuse precompiled bytecode. */
	if (luaL_loadbufferx(L, text, len, name, "t") != 0)
		return -1;
	policy_sandbox_set_env(L, ps);
	return 0;
}

int
policy_sandbox_load_file(lua_State *L, struct policy_state *ps,
    const char *path, const char *chunk_name)
{
	struct stat st;
	char *text = NULL;
	ssize_t n;
	size_t len = 0;
	int fd, rc;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		lua_pushfstring(L, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		lua_pushfstring(L, "%s is not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_size > POLICY_SOURCE_MAX) {
		lua_pushfstring(L, "%s is larger than %d bytes", path,
		    POLICY_SOURCE_MAX);
		close(fd);
		return -1;
	}
	text = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size &&
	    (n = read(fd, text + len, (size_t)st.st_size - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(text);
			close(fd);
			lua_pushfstring(L, "cannot read %s: %s", path,
			    strerror(errno));
			return -1;
		}
		len += (size_t)n;
	}
	close(fd);
	if (len > 0 && text[0] == LUA_SIGNATURE[0]) {
		free(text);
		lua_pushfstring(L, "%s: precompiled bytecode is not accepted, "
		    "only Lua source", path);
		return -1;
	}
	/* lua_pushfstring() and the loader may raise on a memory error, so
	 * the text is freed before anything else touches the state. The
	 * loader copies what it keeps. */
	rc = luaL_loadbufferx(L, text, len, chunk_name, "t");
	free(text);
	if (rc != 0)
		return -1;
	policy_sandbox_set_env(L, ps);
	return 0;
}

/* load(text [, name]) and loadstring(text [, name]): returns the
 * chunk, or nil and the message, as the standard ones do. */
static int
policy_sandbox_load(lua_State *L)
{
	struct policy_state *ps = policy_state_of(L);
	size_t len;
	const char *text;
	const char *name;

	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_argerror(L, 1, "only a string of Lua source can be "
		    "loaded");
	text = lua_tolstring(L, 1, &len);
	name = luaL_optstring(L, 2, "=(load)");
	lua_settop(L, 2);
	if (policy_sandbox_load_text(L, ps, text, len, name) < 0) {
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	return 1;
}

/* True if name is a module name: letters, digits, '_' and '-', parts
 * separated by single dots. */
static bool
policy_sandbox_module_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > POLICY_MODULE_NAME_MAX || name[0] == '.' ||
	    name[len - 1] == '.' || strstr(name, "..") != NULL)
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789_-.") == len;
}

/* require(name): upvalue 1 is the table of loaded modules. */
static int
policy_sandbox_require(lua_State *L)
{
	struct policy_state *ps = policy_state_of(L);
	size_t len;
	const char *name = luaL_checklstring(L, 1, &len);
	char relative[POLICY_MODULE_NAME_MAX + 8];
	char path[POLICY_PATH_MAX];
	char chunk_name[POLICY_PATH_MAX + 2];

	if (!policy_sandbox_module_name_valid(name, len))
		return luaL_argerror(L, 1, "invalid module name");
	lua_settop(L, 1);
	lua_getfield(L, lua_upvalueindex(1), name);
	if (!lua_isnil(L, -1))
		return 1;
	lua_pop(L, 1);
	policy_state_check_phase(L, 1u << POLICY_PHASE_LOAD,
	    "loading a new module with require()");

	snprintf(relative, sizeof(relative), "%s.lua", name);
	for (char *p = relative; *p != '\0' && p < relative + len; p++)
		if (*p == '.')
			*p = '/';
	for (const char *dir = ps->search_path; dir[0] != '\0';
	    dir += strlen(dir) + 1) {
		int n = snprintf(path, sizeof(path), "%s/%s", dir, relative);

		if (n < 0 || (size_t)n >= sizeof(path) || access(path, R_OK) < 0)
			continue;
		snprintf(chunk_name, sizeof(chunk_name), "@%s", path);
		if (policy_sandbox_load_file(L, ps, path, chunk_name) < 0)
			return lua_error(L);
		lua_pushvalue(L, 1);
		lua_call(L, 1, 1);
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			lua_pushboolean(L, 1);
		}
		lua_pushvalue(L, -1);
		lua_setfield(L, lua_upvalueindex(1), name);
		return 1;
	}
	return luaL_error(L, "module \"%s\" not found in lua_path", name);
}

/* os.time([table]): sluice's clock without an argument. Upvalue 1 is
 * the real os.time. */
static int
policy_sandbox_os_time(lua_State *L)
{
	if (lua_isnoneornil(L, 1)) {
		lua_pushnumber(L, (lua_Number)clock_now());
		return 1;
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

static int
policy_sandbox_read_only(lua_State *L)
{
	return luaL_error(L, "sluice is read-only");
}

/* Copies the fields names of the table at index from into a new table
 * left on the stack. */
static void
policy_sandbox_copy(lua_State *L, int from, const char *const *names)
{
	lua_newtable(L);
	for (; *names != NULL; names++) {
		lua_getfield(L, from, *names);
		lua_setfield(L, -2, *names);
	}
}

/* Sets the sandbox's string, os and jit tables into the table on top. */
static void
policy_sandbox_add_libraries(lua_State *L)
{
	int env = lua_gettop(L);

	/* The string table is also the __index of every string, so
	 * string.dump goes from the real one. */
	lua_getglobal(L, "string");
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_setfield(L, env, "string");

	lua_getglobal(L, "os");
	policy_sandbox_copy(L, lua_gettop(L), policy_sandbox_os);
	lua_getfield(L, -2, "time");
	lua_pushcclosure(L, policy_sandbox_os_time, 1);
	lua_setfield(L, -2, "time");
	lua_setfield(L, env, "os");
	lua_pop(L, 1);

	lua_getglobal(L, "jit");
	policy_sandbox_copy(L, lua_gettop(L), policy_sandbox_jit);
	lua_setfield(L, env, "jit");
	lua_pop(L, 1);
}

/* Sets require, load, loadstring and io into the table on top. */
static void
policy_sandbox_add_loaders(lua_State *L)
{
	int env = lua_gettop(L);

	lua_newtable(L);
	lua_pushcclosure(L, policy_sandbox_require, 1);
	lua_setfield(L, env, "require");
	lua_pushcfunction(L, policy_sandbox_load);
	lua_pushvalue(L, -1);
	lua_setfield(L, env, "load");
	lua_setfield(L, env, "loadstring");

	if (luaL_loadbuffer(L, policy_sandbox_io_source,
	    sizeof(policy_sandbox_io_source) - 1, "=sluice.io") != 0)
		lua_error(L);
	lua_getglobal(L, "io");
	lua_getfield(L, -1, "open");
	lua_remove(L, -2);
	lua_pushcfunction(L, policy_sandbox_check_loading);
	lua_call(L, 2, 1);
	lua_setfield(L, env, "io");
}

/* Sets sluice, a read-only view of the library table, into the table
 * on top. */
static void
policy_sandbox_add_sluice(lua_State *L)
{
	lua_newtable(L);
	lua_createtable(L, 0, 3);
	lua_getfield(L, LUA_REGISTRYINDEX, "sluice.library");
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, policy_sandbox_read_only);
	lua_setfield(L, -2, "__newindex");
	lua_pushliteral(L, "sluice library");
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_setfield(L, -2, "sluice");
}

void
policy_sandbox_open(lua_State *L, struct policy_state *ps)
{
	int env;

	lua_newtable(L);
	env = lua_gettop(L);
	for (const char *const *name = policy_sandbox_globals; *name != NULL;
	    name++) {
		lua_getglobal(L, *name);
		lua_setfield(L, env, *name);
	}
	policy_sandbox_add_libraries(L);
	policy_sandbox_add_loaders(L);
	policy_sandbox_add_sluice(L);
	lua_pushvalue(L, env);
	lua_setfield(L, env, "_G");

	lua_pushvalue(L, env);
	ps->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	/* From now on the sandbox is the globals table too, so chunks
	 * compiled later default to it. */
	lua_replace(L, LUA_GLOBALSINDEX);
}
