/*
 * policy.h - the Lua policy engine: the LuaJIT state that runs the
 * operator's policy script (lua_policy), and the calls the core makes
 * into it at fixed hook points.
 *
 * A policy registers handlers with sluice.on(event, fn) while it loads.
 * The core requests a verdict at each session event (connect, helo,
 * mail, rcpt, data, message) and gets a struct policy_verdict back.
 * POLICY_FAILED means the handler raised, ran over its time or memory
 * budget, or returned something invalid: the failure is already logged
 * to mainlog and paniclog, and the caller takes the safe path (451).
 *
 * States: each load builds a fresh LuaJIT state (struct policy_state).
 * The newest one is "current"; an SMTP session holds a reference to the
 * state it uses and changes to the current one only at a transaction
 * boundary, so a reload never switches policy in the middle of a
 * transaction. A state is closed when its last reference goes.
 *
 * Safety: handlers run in a sandbox (no os.execute, io, debug, ffi,
 * dofile, loadfile, no bytecode), under a time budget
 * (lua_time_limit) and a memory cap (lua_memory_limit). See
 * doc/lua-api.md for what a policy sees.
 *
 * Ownership: every pointer passed in a policy_* call is borrowed for
 * that call only. Lua objects that wrap them become invalid when the
 * handler returns.
 *
 * Thread use: the event loop thread only.
 */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct event_base;
struct evbuffer;
struct spool_header;
struct policy_state;

/* Longest reply text a handler may return, without the code. */
#define POLICY_REPLY_TEXT_MAX	256

enum policy_action {
	POLICY_CONTINUE,	/* no objection: the core decides */
	POLICY_REJECT,		/* 5xx with code and text */
	POLICY_DEFER,		/* 4xx with code and text */
	POLICY_RELAY,		/* rcpt only: relaying allowed for it */
	POLICY_FAILED,		/* the handler failed; answer 451 */
};

struct policy_verdict {
	enum policy_action action;
	int code;				/* REJECT and DEFER */
	char text[POLICY_REPLY_TEXT_MAX + 1];	/* REJECT and DEFER */
};

/* The client connection, as the connect, helo, mail, rcpt and data
 * handlers see it. */
struct policy_conn {
	const char *ip;
	int port;
	const char *local_ip;		/* "" when unknown (-bh) */
	int local_port;
	bool tls;
	const char *helo;		/* NULL before HELO/EHLO */
	const char *auth_id;		/* NULL unless authenticated */
};

/* The mail transaction so far. */
struct policy_tx {
	const char *sender;		/* "" for the null sender */
	const char *const *recipients;
	size_t recipient_count;
};

/* A received message before its 250: what the message handler reads
 * and changes. The handler changes header in place (the -H being
 * built): ACL variables for queue class, tenant and campaign, and added
 * or removed header fields. */
struct policy_message {
	const char *id;
	const char *sender;
	const char *const *recipients;
	size_t recipient_count;
	uint64_t size;			/* as Exim's S= */
	const char *client_ip;		/* NULL for a local submission */
	const char *auth_id;		/* NULL unless authenticated */
	struct spool_header *header;
};

/*
 * Starts the engine for config: starts the budget watchdog, loads
 * config->lua_policy when it is set, and, when base is not NULL, runs
 * the tick handler once a second on it. Returns 0, or -1 with *error
 * set (caller frees) when the policy cannot be loaded. config is
 * borrowed and must outlive the state (the daemon keeps every config it
 * loaded until it exits).
 */
int policy_start(struct event_base *base, const struct config *config,
    char **error);

/*
 * Builds a new state from config->lua_policy and makes it current; the
 * old one stays for the sessions that still use it. On failure nothing
 * changes. Runs the new state's reload handler. Returns 0, or -1 with
 * *error set ("FILE:LINE: message", caller frees).
 */
int policy_reload(const struct config *config, char **error);

/* Stops the tick timer, drops the current state and stops the
 * watchdog. States still referenced close when their last user goes. */
void policy_stop(void);

/* True when a policy is loaded (lua_policy is set). */
bool policy_enabled(void);

/* Returns a new reference to the current state, or NULL when no policy
 * is loaded. */
struct policy_state *policy_current(void);
/* Accepts NULL. */
void policy_state_unref(struct policy_state *ps);

/*
 * Moves *ps to the current state if it is another one and boundary is
 * true (the start of a transaction). A state abandoned after a runaway
 * handler is replaced whatever boundary is, since it can run nothing.
 */
void policy_refresh(struct policy_state **ps, bool boundary);

/* True if ps has a handler for event ("mail", ...). */
bool policy_has_handler(const struct policy_state *ps, const char *event);

/*
 * Session events. Each fills *v; with ps NULL, or no handler for the
 * event, the verdict is POLICY_CONTINUE. msgid (may be NULL) names the
 * message in log lines.
 */
void policy_connect(struct policy_state *ps, const struct policy_conn *conn,
    struct policy_verdict *v);
void policy_helo(struct policy_state *ps, const struct policy_conn *conn,
    const char *name, struct policy_verdict *v);
void policy_mail(struct policy_state *ps, const struct policy_conn *conn,
    const struct policy_tx *tx, const char *sender,
    struct policy_verdict *v);
void policy_rcpt(struct policy_state *ps, const struct policy_conn *conn,
    const struct policy_tx *tx, const char *rcpt,
    struct policy_verdict *v);
void policy_data(struct policy_state *ps, const struct policy_conn *conn,
    const struct policy_tx *tx, struct policy_verdict *v);
void policy_message(struct policy_state *ps, struct policy_message *msg,
    struct policy_verdict *v);

/* Runs the tick handler of the current state now (the timer calls
 * it once a second). */
void policy_tick(void);

/* The control socket's "policy" command (a control_command_fn): prints
 * the policy file, the state's number, abandoned states, handlers,
 * memory and compiled traces to out. */
int policy_control_command(int argc, char **argv, struct evbuffer *out);

/* Describes a verdict for -bh traces and logs: "continue", "reject 550
 * text", ... into buf. */
void policy_verdict_text(const struct policy_verdict *v, char *buf,
    size_t size);

#endif
