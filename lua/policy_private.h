/*
 * policy_private.h - the LuaJIT state and the functions shared by the
 * files of lua/: policy.c (life cycle and dispatch), policy_state.c
 * (one state: allocator, load, the sluice table), policy_sandbox.c (the
 * environment policy code runs in), policy_objects.c (conn, tx and msg
 * objects) and policy_budget.c (time budget). Not for use elsewhere.
 */
#ifndef SLUICE_POLICY_PRIVATE_H
#define SLUICE_POLICY_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "config.h"
#include "policy.h"
#include "policy_queue.h"

/* Events a policy can register for: those of a session in their order,
 * the timers, then the queue-side events of policy_queue.c. */
enum policy_event {
	POLICY_EVENT_CONNECT,
	POLICY_EVENT_HELO,
	POLICY_EVENT_MAIL,
	POLICY_EVENT_RCPT,
	POLICY_EVENT_DATA,
	POLICY_EVENT_MESSAGE,
	POLICY_EVENT_TICK,
	POLICY_EVENT_RELOAD,
	POLICY_EVENT_ROUTE,
	POLICY_EVENT_SELECT_SOURCE,
	POLICY_EVENT_SHAPING,
	POLICY_EVENT_DELIVERY_RESULT,
	POLICY_EVENT_COUNT
};

/* The state's activity, checked by library functions that work only
 * at some times (sluice.on and io.open while loading). */
enum policy_phase {
	POLICY_PHASE_IDLE,	/* between calls */
	POLICY_PHASE_LOAD,	/* running the policy's top level */
	POLICY_PHASE_HANDLER,	/* running an event handler */
};

/* Room for "script:line" in log lines. */
#define POLICY_WHERE_SIZE	256
/* Bounds on what a policy hands back to C. */
#define POLICY_LOG_TEXT_MAX	1024	/* sluice.log() text, bytes logged */
#define POLICY_NAME_MAX		64	/* queue class, tenant, campaign */
#define POLICY_HEADER_NAME_MAX	128
#define POLICY_HEADER_VALUE_MAX	4096
#define POLICY_MODULE_NAME_MAX	128
#define POLICY_SOURCE_MAX	(4 * 1024 * 1024)	/* a script file */
#define POLICY_PATH_MAX		4096
/* Lua stack slots a C function may push before it checks again. */
#define POLICY_STACK_SLOTS	20

struct policy_handler {
	int ref;			/* registry reference, or LUA_NOREF */
	char where[POLICY_WHERE_SIZE];	/* "script:line" of its definition */
};

struct policy_state {
	lua_State *L;			/* NULL once closed or abandoned */
	const struct config *config;	/* borrowed; outlives the state */
	unsigned refs;			/* policy.c's "current" plus users */
	uint64_t serial;		/* 1 for the first state, and so on */
	bool abandoned;			/* a runaway handler was cut off */

	/* Memory: bytes the state holds, and the cap while policy code
	 * runs. Every block sits on a list, so an abandoned state's memory
	 * can be freed without asking LuaJIT (see policy_budget.c). */
	size_t memory_used;
	size_t memory_limit;
	bool memory_capped;
	struct policy_block *blocks;	/* doubly linked, circular */

	enum policy_phase phase;
	/* Objects made for a call carry its generation; once the call
	 * ends, generation moves on and they are stale. */
	uint64_t generation;
	enum policy_event event;	/* the handler running */
	const char *msgid;		/* of the running call, or NULL */
	bool quiet;			/* do not log failures (tick) */
	/* The same failure in a row of each queue-side handler, whose
	 * logging thins out after the first few (policy_log_failure()). */
	uint64_t failures[POLICY_EVENT_COUNT];
	uint64_t failure_hash[POLICY_EVENT_COUNT];
	char error_where[POLICY_WHERE_SIZE];	/* of the last error */

	struct policy_handler handlers[POLICY_EVENT_COUNT];
	int env_ref;			/* the sandbox environment */
	int traceback_ref;		/* the error handler of every call */
	int jit_util_ref;		/* jit.util, for "policy" statistics */
	char *policy_file;		/* owned */
	char *search_path;		/* owned; lua_path as folders */
	/* Sources, pools and classes the top level declared; owned, NULL
	 * until the first declaration (see policy_declarations.c). */
	struct policy_declared *declared;
};

/* policy.c */

/* Pushes the arguments of one handler call and returns their number. */
typedef int (*policy_push_fn)(lua_State *L, void *arg);
/* Reads the nresults results of a handler, at stack index 1 and up.
 * Runs inside the protected call and may raise, which fails the call. */
typedef void (*policy_collect_fn)(lua_State *L, int nresults, void *arg);

/*
 * Calls the handler of event in ps with the arguments push pushes (push
 * may be NULL) and hands its results to collect (may be NULL), both
 * inside the protected call, under the time budget and the memory cap.
 * Returns 1 when the handler ran, 0 when ps is NULL or has no handler
 * for event, or -1 after logging the failure with msgid (may be NULL).
 */
int policy_call(struct policy_state *ps, enum policy_event event,
    const char *msgid, policy_push_fn push, void *push_arg,
    policy_collect_fn collect, void *collect_arg);

/* policy_state.c */

/* Names an event ("mail"); returns -1 from policy_event_find() for an
 * unknown name. */
const char *policy_event_name(enum policy_event event);
int policy_event_find(const char *name);

/*
 * Creates a state for config and runs its policy file's top level.
 * Returns the state with one reference, or NULL with *error set
 * ("FILE:LINE: message", caller frees).
 */
struct policy_state *policy_state_load(const struct config *config,
    uint64_t serial, char **error);

/* Closes the Lua state (lua_close) unless it was abandoned; frees
 * everything. Called by policy_state_unref() for the last reference. */
void policy_state_free(struct policy_state *ps);

/* Frees every block of an abandoned state without touching LuaJIT's
 * structures, which may be half-updated. */
void policy_state_abandon(struct policy_state *ps);

/* The state that owns L (its allocator's user data). */
struct policy_state *policy_state_of(lua_State *L);

/* Raises a Lua error unless the state is in one of the phases in mask
 * (bits 1 << enum policy_phase); what names the function. */
void policy_state_check_phase(lua_State *L, unsigned mask, const char *what);

/* policy_sandbox.c */

/* Builds the environment policy code runs in, registers it as
 * ps->env_ref and installs require, load and io. Runs inside a
 * protected call. */
void policy_sandbox_open(lua_State *L, struct policy_state *ps);

/* Loads a Lua source file as text (never bytecode) with the sandbox
 * as its environment, leaving the chunk on the stack. Returns 0, or -1
 * with the error message on the stack. */
int policy_sandbox_load_file(lua_State *L, struct policy_state *ps,
    const char *path, const char *chunk_name);

/* policy_objects.c */

/* Registers the metatables of the conn, tx and msg classes. Runs inside
 * a protected call. */
void policy_objects_open(lua_State *L);

/* Push a new object for the running call; the C data is borrowed until
 * the call ends. */
void policy_objects_push_conn(lua_State *L, const struct policy_conn *conn);
void policy_objects_push_tx(lua_State *L, const struct policy_tx *tx);
void policy_objects_push_msg(lua_State *L, struct policy_message *msg);

/* policy_declarations.c */

/* Adds sluice.source, sluice.pool and sluice.class to the table on top
 * of the stack. */
void policy_declarations_open(lua_State *L);

/* Frees ps->declared. Accepts a state without declarations. */
void policy_declarations_free(struct policy_state *ps);

/* True if name is "default" or a pool that decls (may be NULL)
 * declares. */
bool policy_declarations_has_pool(const struct policy_declarations *decls,
    const char *name);

/* The state's declarations, or NULL when its policy declared none. */
const struct policy_declarations *policy_declarations_of(
    const struct policy_state *ps);

/* policy_queue.c */

/* Adds sluice.suspend to the table on top of the stack. */
void policy_queue_open(lua_State *L);

/* Checks of declared names and of values handlers return; len is the
 * length of s, which may contain NUL bytes. */
bool policy_queue_name_ok(const char *s, size_t len);	/* [A-Za-z0-9_.-]{1,64} */
bool policy_queue_ip_ok(const char *s, size_t len);	/* IPv4 or IPv6 text */
bool policy_queue_host_ok(const char *s, size_t len);	/* a host name */
bool policy_queue_site_ok(const char *s, size_t len);

/*
 * Validators of handler results: each reads the value at idx with raw
 * access only, so no metamethod runs, but it may raise a memory error
 * and so must run in a protected call. Each returns 1 and fills its out
 * argument when the value is a valid result, 0 for nil (out untouched),
 * or -1 with a message in problem (size bytes); out may then be partly
 * filled.
 */
int policy_queue_check_route(lua_State *L, int idx,
    const struct policy_declarations *decls, struct policy_route_out *out,
    char *problem, size_t size);
int policy_queue_check_source(lua_State *L, int idx,
    const struct policy_path_in *in, size_t *index, char *problem,
    size_t size);
int policy_queue_check_shaping(lua_State *L, int idx,
    struct policy_shaping *out, char *problem, size_t size);

/* policy_budget.c */

/* Starts and stops the watchdog thread. Returns 0, or -1 with *error
 * set (caller frees). */
int policy_budget_start(char **error);
void policy_budget_stop(void);

/* Result of policy_budget_call() when the call was cut off in compiled
 * or C code and the state must be abandoned. */
#define POLICY_CALL_ABANDONED	(-1)

/*
 * Calls the function below the nargs arguments on ps's stack, as
 * lua_pcall() with ps->traceback_ref as error handler, for at most
 * limit_usec. Returns lua_pcall()'s result, with the error message on
 * the stack, or POLICY_CALL_ABANDONED with the stack unusable.
 */
int policy_budget_call(struct policy_state *ps, int nargs, int nresults,
    uint64_t limit_usec);

#endif
