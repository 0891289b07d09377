/*
 * policy_tables.c - the cost of sluice.counters:incr, throttles:try and
 * scores:adjust from Lua, and of saving 100,000 counters.
 *
 * Usage: policy_tables [CALLS]
 *
 * Each call figure is the mean over CALLS calls (default 1000000) of a
 * Lua loop in one chunk, measured with the monotonic clock around the
 * whole loop, so it includes the loop itself. Names cycle through 1000
 * keys. The save figure is policy_tables_persist_stop() with 100,000
 * counters: the snapshot, the Berkeley DB write, fsync and rename.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <event2/event.h>

#include "clock.h"
#include "policy_tables.h"
#include "util.h"

#define BENCH_SAVE_ENTRIES	100000

static const struct {
	const char *name;
	const char *loop;
} bench_calls[] = {
	{ "counters:incr", "local c = sluice.counters\n"
	    "for i = 1, n do c:incr(keys[i % 1000 + 1]) end" },
	{ "throttles:try", "local t = sluice.throttles\n"
	    "for i = 1, n do t:try(keys[i % 1000 + 1], '1000000/s', 100) end" },
	{ "scores:adjust", "local s = sluice.scores\n"
	    "for i = 1, n do s:adjust('192.0.2.7', keys[i % 1000 + 1], 1) end" },
};

static void
bench_run_lua(lua_State *L, const char *name, const char *loop, long calls)
{
	char *code = xasprintf("local n = %ld\n%s", calls, loop);
	uint64_t start, usec;

	start = clock_monotonic_usec();
	if (luaL_dostring(L, code) != 0)
		fatalx("%s: %s", name, lua_tostring(L, -1));
	usec = clock_monotonic_usec() - start;
	printf("%-16s %8.1f ns/call\n", name, (double)usec * 1000.0 / calls);
	free(code);
}

static void
bench_save(void)
{
	struct event_base *base = event_base_new();
	char dir[] = "/tmp/sluice-bench-tables-XXXXXX";
	char *error = NULL, *command;
	uint64_t start;

	if (base == NULL || mkdtemp(dir) == NULL)
		fatal("cannot set up the save benchmark");
	policy_tables_reset(BENCH_SAVE_ENTRIES);
	if (policy_tables_persist_start(base, dir, &error) < 0)
		fatalx("%s", error);
	for (int i = 0; i < BENCH_SAVE_ENTRIES; i++) {
		char key[32];
		int len = snprintf(key, sizeof(key), "sent:192.0.2.%d:site%d",
		    i % 256, i);

		policy_counters_incr(key, (size_t)len, 1);
	}
	start = clock_monotonic_usec();
	policy_tables_persist_stop();
	printf("%-16s %8.1f ms for %d counters\n", "save",
	    (double)(clock_monotonic_usec() - start) / 1000.0,
	    BENCH_SAVE_ENTRIES);
	command = xasprintf("rm -rf '%s'", dir);
	if (system(command) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	free(command);
	event_base_free(base);
}

int
main(int argc, char **argv)
{
	long calls = argc > 1 ? atol(argv[1]) : 1000000;
	lua_State *L;

	if (calls <= 0)
		fatalx("usage: policy_tables [CALLS]");
	L = luaL_newstate();
	if (L == NULL)
		fatalx("cannot create a Lua state");
	luaL_openlibs(L);
	lua_newtable(L);
	policy_tables_open(L);
	lua_setglobal(L, "sluice");
	if (luaL_dostring(L, "keys = {}\n"
	    "for i = 1, 1000 do keys[i] = 'key' .. i end") != 0)
		fatalx("%s", lua_tostring(L, -1));

	for (size_t i = 0; i < ARRAY_SIZE(bench_calls); i++)
		bench_run_lua(L, bench_calls[i].name, bench_calls[i].loop, calls);
	lua_close(L);
	bench_save();
	return 0;
}
