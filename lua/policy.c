/*
 * policy.c - the policy engine's life cycle and the calls of handlers
 * (see policy.h).
 *
 * Every handler call goes through policy_run(): it refuses re-entry,
 * pushes the arguments inside the protected call (making an object may
 * raise a memory error), runs the handler under the time budget and the
 * memory cap, and moves the state's generation on afterwards so that
 * the objects of the call go stale. A failure is logged to mainlog and
 * paniclog with the event, the script and line, and the message id when
 * there is one; the caller then takes the safe path.
 *
 * A handler cut off in compiled code leaves its state unusable (see
 * policy_budget.c): the state is abandoned and the policy is loaded
 * again into a new one. Until that succeeds (it is tried again on every
 * tick), every event of the abandoned state fails, so sessions get 451.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <lauxlib.h>
#include <lua.h>

#include "clock.h"
#include "log.h"
#include "log_line.h"
#include "policy_private.h"
#include "policy_tables.h"
#include "util.h"

#define POLICY_TICK_USEC	(1000 * 1000)
/* A tick handler that keeps failing is logged on its first failure and
 * then once per this many. */
#define POLICY_TICK_LOG_EVERY	60
/* The queue-side handlers run per message: the same failure of one of
 * them is logged this many times in a row, then one time in
 * POLICY_QUEUE_LOG_EVERY, until the handler succeeds or fails in
 * another way. */
#define POLICY_QUEUE_LOG_FIRST	10
#define POLICY_QUEUE_LOG_EVERY	100
/* Room for an error message in a log line, before escaping. */
#define POLICY_ERROR_TEXT_MAX	512

static struct {
	bool started;
	struct policy_state *current;	/* NULL when no policy is loaded */
	const struct config *config;	/* of the current state */
	uint64_t serial;		/* of the newest state */
	uint64_t abandoned;		/* states cut off since start-up */
	struct clock_timer *tick_timer;
	unsigned tick_failures;		/* in a row */
	unsigned replace_failures;	/* in a row */
} policy;

/* One handler call, passed through the protected call as a light
 * userdata. */
struct policy_invocation {
	struct policy_state *ps;
	enum policy_event event;
	policy_push_fn push;
	void *arg;
	policy_collect_fn collect;	/* NULL: results stay on the stack */
	void *collect_arg;
};

bool
policy_enabled(void)
{
	return policy.current != NULL;
}

struct policy_state *
policy_current(void)
{
	if (policy.current != NULL)
		policy.current->refs++;
	return policy.current;
}

void
policy_state_unref(struct policy_state *ps)
{
	if (ps == NULL)
		return;
	SLUICE_ASSERT(ps->refs > 0);
	if (--ps->refs == 0)
		policy_state_free(ps);
}

void
policy_refresh(struct policy_state **ps, bool boundary)
{
	if (*ps == policy.current || (!boundary && (*ps == NULL ||
	    !(*ps)->abandoned)))
		return;
	policy_state_unref(*ps);
	*ps = policy_current();
}

bool
policy_has_handler(const struct policy_state *ps, const char *event)
{
	int e = policy_event_find(event);

	return ps != NULL && ps->L != NULL && e >= 0 &&
	    ps->handlers[e].ref != LUA_NOREF;
}

/* ---- failures ---- */

/* Logs a failed handler. message may start with "where: ", which is
 * then not repeated. */
static void
policy_log_failure(struct policy_state *ps, enum policy_event event,
    const char *msgid, const char *where, const char *message)
{
	char escaped[POLICY_ERROR_TEXT_MAX * 4 + 16];
	size_t len = strlen(where);

	if (ps->quiet)
		return;
	if (len > 0 && strncmp(message, where, len) == 0 &&
	    message[len] == ':' && message[len + 1] == ' ')
		message += len + 2;
	if (event >= POLICY_EVENT_ROUTE) {
		/* Queue-side handlers run per message: the same failure again
		 * and again is logged at first, then one time in many. */
		uint64_t hash = hash_fnv(HASH_FNV_START, message,
		    strlen(message));

		if (hash != ps->failure_hash[event]) {
			ps->failure_hash[event] = hash;
			ps->failures[event] = 0;
		}
		ps->failures[event]++;
		if (ps->failures[event] > POLICY_QUEUE_LOG_FIRST &&
		    ps->failures[event] % POLICY_QUEUE_LOG_EVERY != 0)
			return;
		if (ps->failures[event] == POLICY_QUEUE_LOG_FIRST)
			log_write(LOG_MAIN | LOG_PANIC, NULL, "policy %s handler "
			    "failed the same way %d times in a row: from now on "
			    "one such failure in %d is logged",
			    policy_event_name(event), POLICY_QUEUE_LOG_FIRST,
			    POLICY_QUEUE_LOG_EVERY);
	}
	log_line_escape(escaped, sizeof(escaped), message,
	    POLICY_ERROR_TEXT_MAX, LOG_ESCAPE_TEXT);
	log_write(LOG_MAIN | LOG_PANIC, msgid, "policy %s handler failed at %s: "
	    "%s", policy_event_name(event), where[0] != '\0' ? where :
	    ps->handlers[event].where, escaped);
}

/* Loads the policy again after the current state was abandoned. */
static void
policy_replace_abandoned(void)
{
	struct policy_state *ps;
	char *error = NULL;

	if (policy.current == NULL || !policy.current->abandoned)
		return;
	if ((ps = policy_state_load(policy.config, ++policy.serial,
	    &error)) == NULL) {
		/* Tried again on every tick, so repeats are logged once per
		 * POLICY_TICK_LOG_EVERY. */
		if (policy.replace_failures++ % POLICY_TICK_LOG_EVERY == 0)
			log_write(LOG_MAIN | LOG_PANIC, NULL, "policy reload after "
			    "a runaway handler failed: %s", error);
		free(error);
		return;
	}
	policy.replace_failures = 0;
	policy_state_unref(policy.current);
	policy.current = ps;
	log_write(LOG_MAIN, NULL, "policy reloaded into a new Lua state after "
	    "a runaway handler (%llu abandoned since start-up)",
	    (unsigned long long)policy.abandoned);
}

/* ---- calling handlers ---- */

/* Runs in protected mode: pushes the handler and its arguments and
 * calls it. Returns the handler's results, or none when they went to
 * the invocation's collect function. */
static int
policy_invoke(lua_State *L)
{
	struct policy_invocation *inv = lua_touserdata(L, 1);
	int nargs;

	lua_settop(L, 0);
	lua_rawgeti(L, LUA_REGISTRYINDEX, inv->ps->handlers[inv->event].ref);
	nargs = inv->push != NULL ? inv->push(L, inv->arg) : 0;
	lua_call(L, nargs, LUA_MULTRET);
	if (inv->collect == NULL)
		return lua_gettop(L);
	inv->collect(L, lua_gettop(L), inv->collect_arg);
	return 0;
}

/*
 * Calls the handler of event in ps, if there is one. Returns the number
 * of results left on the stack above *base (the caller pops them with
 * lua_settop(L, *base)), 0 when there is no handler, or -1 after
 * logging a failure.
 */
static int
policy_run(struct policy_state *ps, enum policy_event event,
    const char *msgid, struct policy_invocation *inv_in, int *base)
{
	struct policy_invocation inv = *inv_in;
	lua_State *L;
	int rc;

	if (ps == NULL)
		return 0;
	if (ps->L == NULL) {
		policy_log_failure(ps, event, msgid, "", "the policy's Lua state "
		    "was abandoned after a runaway handler and could not be "
		    "loaded again");
		return -1;
	}
	if (ps->handlers[event].ref == LUA_NOREF)
		return 0;
	L = ps->L;
	if (ps->phase != POLICY_PHASE_IDLE) {
		policy_log_failure(ps, event, msgid, "", "a handler was called "
		    "while another one was running");
		return -1;
	}
	if (!lua_checkstack(L, POLICY_STACK_SLOTS)) {
		policy_log_failure(ps, event, msgid, "", "no room on the Lua "
		    "stack");
		return -1;
	}

	*base = lua_gettop(L);
	lua_pushcfunction(L, policy_invoke);
	lua_pushlightuserdata(L, &inv);
	ps->phase = POLICY_PHASE_HANDLER;
	ps->event = event;
	ps->msgid = msgid;
	ps->error_where[0] = '\0';
	ps->memory_capped = true;
	rc = policy_budget_call(ps, 1, LUA_MULTRET,
	    (uint64_t)ps->config->lua_time_limit * 1000);
	ps->memory_capped = false;
	ps->phase = POLICY_PHASE_IDLE;
	ps->msgid = NULL;
	ps->generation++;

	if (rc == POLICY_CALL_ABANDONED) {
		policy.abandoned++;
		policy_log_failure(ps, event, msgid, "", "time budget exceeded "
		    "in compiled or library code; the Lua state is abandoned");
		policy_state_abandon(ps);
		policy_replace_abandoned();
		return -1;
	}
	if (rc != 0) {
		char text[POLICY_ERROR_TEXT_MAX + 64];

		if (rc == LUA_ERRMEM)
			snprintf(text, sizeof(text), "not enough memory "
			    "(lua_memory_limit is %zu bytes)", ps->memory_limit);
		else
			snprintf(text, sizeof(text), "%s", lua_tostring(L, -1) !=
			    NULL ? lua_tostring(L, -1) : "(no message)");
		policy_log_failure(ps, event, msgid, ps->error_where, text);
		lua_settop(L, *base);
		/* Lua 5.1 has no emergency collection: the garbage of the
		 * failed call would make the next one fail too. */
		if (rc == LUA_ERRMEM)
			lua_gc(L, LUA_GCCOLLECT, 0);
		return -1;
	}
	return lua_gettop(L) - *base;
}

int
policy_call(struct policy_state *ps, enum policy_event event,
    const char *msgid, policy_push_fn push, void *push_arg,
    policy_collect_fn collect, void *collect_arg)
{
	struct policy_invocation inv = { ps, event, push, push_arg, collect,
	    collect_arg };
	int base = 0, n;

	if (ps == NULL || (ps->L != NULL &&
	    ps->handlers[event].ref == LUA_NOREF))
		return 0;
	n = policy_run(ps, event, msgid, &inv, &base);
	if (n >= 0 && ps->failures[event] > 0) {
		if (ps->failures[event] > POLICY_QUEUE_LOG_FIRST)
			log_write(LOG_MAIN, NULL, "policy %s handler succeeded "
			    "again after %llu failures in a row",
			    policy_event_name(event),
			    (unsigned long long)ps->failures[event]);
		ps->failures[event] = 0;
	}
	if (n < 0)
		return -1;
	lua_settop(ps->L, base);
	return 1;
}

/* Fills v from a reply text the handler gave, checking it. */
static bool
policy_parse_reply(lua_State *L, int idx, enum policy_action action,
    struct policy_verdict *v, char *problem, size_t size)
{
	int low = action == POLICY_REJECT ? 500 : 400;
	const char *text;
	size_t len;

	v->action = action;
	v->code = action == POLICY_REJECT ? 550 : 451;
	snprintf(v->text, sizeof(v->text), "%s", action == POLICY_REJECT ?
	    "Administrative prohibition" : "Temporary local problem - please "
	    "try later");
	if (!lua_isnoneornil(L, idx + 1)) {
		lua_Number code = lua_tonumber(L, idx + 1);

		if (lua_type(L, idx + 1) != LUA_TNUMBER || code != (int)code ||
		    code < low || code > low + 99) {
			snprintf(problem, size, "the code after \"%s\" must be a "
			    "number from %d to %d", action == POLICY_REJECT ?
			    "reject" : "defer", low, low + 99);
			return false;
		}
		v->code = (int)code;
	}
	if (lua_isnoneornil(L, idx + 2))
		return true;
	if (lua_type(L, idx + 2) != LUA_TSTRING) {
		snprintf(problem, size, "the reply text must be a string");
		return false;
	}
	text = lua_tolstring(L, idx + 2, &len);
	if (len == 0 || len > POLICY_REPLY_TEXT_MAX) {
		snprintf(problem, size, "the reply text must have 1 to %d "
		    "characters", POLICY_REPLY_TEXT_MAX);
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (text[i] < 32 || text[i] > 126) {
			snprintf(problem, size, "the reply text may contain only "
			    "printable ASCII characters");
			return false;
		}
	}
	memcpy(v->text, text, len + 1);
	return true;
}

/* Turns the results of a session event's handler into a verdict. */
static void
policy_verdict_from(struct policy_state *ps, enum policy_event event,
    const char *msgid, int nresults, int base, struct policy_verdict *v)
{
	lua_State *L = ps->L;
	int idx = base + 1;
	char problem[160] = "";
	const char *word;

	memset(v, 0, sizeof(*v));
	if (nresults == 0 || lua_isnil(L, idx)) {
		v->action = POLICY_CONTINUE;
	} else if (lua_type(L, idx) != LUA_TSTRING) {
		snprintf(problem, sizeof(problem), "returned a %s; expected "
		    "nothing, \"reject\", \"defer\"%s", luaL_typename(L, idx),
		    event == POLICY_EVENT_RCPT ? " or \"relay\"" : "");
	} else if (strcmp(word = lua_tostring(L, idx), "reject") == 0) {
		policy_parse_reply(L, idx, POLICY_REJECT, v, problem,
		    sizeof(problem));
	} else if (strcmp(word, "defer") == 0) {
		policy_parse_reply(L, idx, POLICY_DEFER, v, problem,
		    sizeof(problem));
	} else if (strcmp(word, "relay") == 0 && event == POLICY_EVENT_RCPT) {
		v->action = POLICY_RELAY;
	} else {
		snprintf(problem, sizeof(problem), "returned \"%.32s\"; expected "
		    "nothing, \"reject\", \"defer\"%s", word,
		    event == POLICY_EVENT_RCPT ? " or \"relay\"" : "");
	}
	lua_settop(L, base);
	if (problem[0] != '\0') {
		policy_log_failure(ps, event, msgid, ps->handlers[event].where,
		    problem);
		memset(v, 0, sizeof(*v));
		v->action = POLICY_FAILED;
	}
}

/* Runs a session event and fills its verdict. */
static void
policy_session_event(struct policy_state *ps, enum policy_event event,
    const char *msgid, policy_push_fn push, void *arg,
    struct policy_verdict *v)
{
	struct policy_invocation inv = { ps, event, push, arg, NULL, NULL };
	int base = 0;
	int n = policy_run(ps, event, msgid, &inv, &base);

	memset(v, 0, sizeof(*v));
	if (n < 0)
		v->action = POLICY_FAILED;
	else if (n == 0)
		v->action = POLICY_CONTINUE;
	else
		policy_verdict_from(ps, event, msgid, n, base, v);
	if (n == 0 && ps != NULL && ps->L != NULL)
		lua_settop(ps->L, base);
}

/* Arguments of the session events. */
struct policy_session_args {
	const struct policy_conn *conn;
	const struct policy_tx *tx;
	const char *text;		/* HELO name, sender or recipient */
	struct policy_message *msg;
};

static int
policy_push_conn_text(lua_State *L, void *arg)
{
	const struct policy_session_args *a = arg;

	policy_objects_push_conn(L, a->conn);
	if (a->text == NULL)
		return 1;
	lua_pushstring(L, a->text);
	return 2;
}

static int
policy_push_tx_text(lua_State *L, void *arg)
{
	const struct policy_session_args *a = arg;

	policy_objects_push_tx(L, a->tx);
	if (a->text == NULL)
		return 1;
	lua_pushstring(L, a->text);
	return 2;
}

static int
policy_push_msg(lua_State *L, void *arg)
{
	const struct policy_session_args *a = arg;

	policy_objects_push_msg(L, a->msg);
	return 1;
}

void
policy_connect(struct policy_state *ps, const struct policy_conn *conn,
    struct policy_verdict *v)
{
	struct policy_session_args a = { .conn = conn };

	policy_session_event(ps, POLICY_EVENT_CONNECT, NULL,
	    policy_push_conn_text, &a, v);
}

void
policy_helo(struct policy_state *ps, const struct policy_conn *conn,
    const char *name, struct policy_verdict *v)
{
	struct policy_session_args a = { .conn = conn, .text = name };

	policy_session_event(ps, POLICY_EVENT_HELO, NULL,
	    policy_push_conn_text, &a, v);
}

void
policy_mail(struct policy_state *ps, const struct policy_conn *conn,
    const struct policy_tx *tx, const char *sender,
    struct policy_verdict *v)
{
	struct policy_session_args a = { .conn = conn, .tx = tx,
	    .text = sender };

	policy_session_event(ps, POLICY_EVENT_MAIL, NULL, policy_push_tx_text,
	    &a, v);
}

void
policy_rcpt(struct policy_state *ps, const struct policy_conn *conn,
    const struct policy_tx *tx, const char *rcpt, struct policy_verdict *v)
{
	struct policy_session_args a = { .conn = conn, .tx = tx, .text = rcpt };

	policy_session_event(ps, POLICY_EVENT_RCPT, NULL, policy_push_tx_text,
	    &a, v);
}

void
policy_data(struct policy_state *ps, const struct policy_conn *conn,
    const struct policy_tx *tx, struct policy_verdict *v)
{
	struct policy_session_args a = { .conn = conn, .tx = tx };

	policy_session_event(ps, POLICY_EVENT_DATA, NULL, policy_push_tx_text,
	    &a, v);
}

void
policy_message(struct policy_state *ps, struct policy_message *msg,
    struct policy_verdict *v)
{
	struct policy_session_args a = { .msg = msg };

	policy_session_event(ps, POLICY_EVENT_MESSAGE, msg->id,
	    policy_push_msg, &a, v);
}

void
policy_verdict_text(const struct policy_verdict *v, char *buf, size_t size)
{
	switch (v->action) {
	case POLICY_CONTINUE:
		snprintf(buf, size, "continue");
		return;
	case POLICY_REJECT:
		snprintf(buf, size, "reject %d %s", v->code, v->text);
		return;
	case POLICY_DEFER:
		snprintf(buf, size, "defer %d %s", v->code, v->text);
		return;
	case POLICY_RELAY:
		snprintf(buf, size, "relay");
		return;
	case POLICY_FAILED:
		snprintf(buf, size, "failed (the error is logged; 451)");
		return;
	}
	snprintf(buf, size, "unknown");
}

/* ---- tick and reload handlers ---- */

/* Runs a handler whose results are ignored; returns 0 or -1. */
static int
policy_run_plain(struct policy_state *ps, enum policy_event event)
{
	struct policy_invocation inv = { ps, event, NULL, NULL, NULL, NULL };
	int base = 0;
	int n = policy_run(ps, event, NULL, &inv, &base);

	if (n > 0)
		lua_settop(ps->L, base);
	return n < 0 ? -1 : 0;
}

void
policy_tick(void)
{
	struct policy_state *ps;

	policy_replace_abandoned();
	if ((ps = policy_current()) == NULL)
		return;
	if (ps->L != NULL && ps->handlers[POLICY_EVENT_TICK].ref != LUA_NOREF) {
		/* A tick handler that keeps failing would fill the log, so
		 * only its first failure and every POLICY_TICK_LOG_EVERY-th
		 * are logged. */
		ps->quiet = policy.tick_failures % POLICY_TICK_LOG_EVERY != 0;
		if (policy_run_plain(ps, POLICY_EVENT_TICK) < 0)
			policy.tick_failures++;
		else
			policy.tick_failures = 0;
		ps->quiet = false;
	}
	policy_state_unref(ps);
}

static void
policy_tick_cb(void *arg)
{
	policy_tick();
	clock_timer_arm(policy.tick_timer, POLICY_TICK_USEC);
}

/* ---- the control command ---- */

struct policy_trace_count {
	struct policy_state *ps;
	int count;
};

/* Runs in protected mode (lua_cpcall() drops results, so the count goes
 * into the struct that is argument 1). */
static int
policy_count_traces(lua_State *L)
{
	struct policy_trace_count *tc = lua_touserdata(L, 1);

	lua_settop(L, 0);
	if (tc->ps->jit_util_ref == LUA_NOREF)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, tc->ps->jit_util_ref);
	/* LuaJIT numbers traces from 1 and keeps at most maxtrace of them,
	 * 1000 unless jit.opt changes it. */
	for (int i = 1; i <= 1000; i++) {
		lua_getfield(L, 1, "traceinfo");
		lua_pushinteger(L, i);
		lua_call(L, 1, 1);
		if (!lua_isnil(L, -1))
			tc->count++;
		lua_pop(L, 1);
	}
	return 0;
}

int
policy_control_command(int argc, char **argv, struct evbuffer *out)
{
	struct policy_state *ps = policy.current;
	struct policy_trace_count traces = { ps, 0 };

	if (argc != 1) {
		evbuffer_add_printf(out, "usage: policy");
		return -1;
	}
	if (ps == NULL) {
		evbuffer_add_printf(out, "policy=none\n");
		return 0;
	}
	evbuffer_add_printf(out, "policy=%s\nstate=%llu\nabandoned=%llu\n",
	    ps->policy_file, (unsigned long long)ps->serial,
	    (unsigned long long)policy.abandoned);
	if (ps->L == NULL) {
		evbuffer_add_printf(out, "handlers=\n");
		return 0;
	}
	evbuffer_add_printf(out, "handlers=");
	for (int i = 0, n = 0; i < POLICY_EVENT_COUNT; i++)
		if (ps->handlers[i].ref != LUA_NOREF)
			evbuffer_add_printf(out, "%s%s", n++ > 0 ? "," : "",
			    policy_event_name(i));
	if (lua_cpcall(ps->L, policy_count_traces, &traces) != 0)
		lua_pop(ps->L, 1);
	evbuffer_add_printf(out, "\nmemory=%zu\nmemory_limit=%zu\ntraces=%d\n",
	    ps->memory_used, ps->memory_limit, traces.count);
	return 0;
}

/* ---- life cycle ---- */

int
policy_start(struct event_base *base, const struct config *config,
    char **error)
{
	SLUICE_ASSERT(!policy.started);
	if (policy_tables_configure(config->day_rollover,
	    config->policy_table_max_entries, error) < 0)
		return -1;
	/* The daemon keeps the shared tables on disk; they are loaded
	 * before the policy's top level runs. */
	if (base != NULL && policy_tables_persist_start(base,
	    config->spool_directory, error) < 0)
		return -1;
	if (config->lua_policy != NULL && config->lua_policy[0] != '\0') {
		if (policy_budget_start(error) < 0) {
			policy_tables_persist_stop();
			return -1;
		}
		if ((policy.current = policy_state_load(config, ++policy.serial,
		    error)) == NULL) {
			policy_budget_stop();
			policy_tables_persist_stop();
			return -1;
		}
	}
	policy.config = config;
	policy.started = true;
	if (base != NULL) {
		policy.tick_timer = clock_timer_new(base, policy_tick_cb, NULL);
		clock_timer_arm(policy.tick_timer, POLICY_TICK_USEC);
	}
	return 0;
}

int
policy_reload(const struct config *config, char **error)
{
	struct policy_state *ps = NULL;

	SLUICE_ASSERT(policy.started);
	if (config->lua_policy != NULL && config->lua_policy[0] != '\0') {
		if (policy_budget_start(error) < 0)
			return -1;
		if ((ps = policy_state_load(config, ++policy.serial,
		    error)) == NULL)
			return -1;
	}
	if (policy_tables_configure(config->day_rollover,
	    config->policy_table_max_entries, error) < 0) {
		policy_state_unref(ps);
		return -1;
	}
	policy_state_unref(policy.current);
	policy.current = ps;
	policy.config = config;
	policy.tick_failures = 0;
	if (ps != NULL)
		policy_run_plain(ps, POLICY_EVENT_RELOAD);
	return 0;
}

void
policy_stop(void)
{
	if (!policy.started)
		return;
	clock_timer_free(policy.tick_timer);
	policy.tick_timer = NULL;
	policy_state_unref(policy.current);
	policy.current = NULL;
	policy_budget_stop();
	policy_tables_persist_stop();
	policy.started = false;
}
