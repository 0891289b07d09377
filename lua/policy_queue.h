/*
 * policy_queue.h - the queue-side events of the policy and what a policy
 * declares for the scheduler: egress sources, pools and queue classes.
 *
 * Events (see doc/lua-api.md):
 *  - route: where the mail of one (message, domain) goes: its site, its
 *    egress pool, optional explicit next hops and port, and the router
 *    name for R= in the log.
 *  - select_source: which source of the pool a message leaves from.
 *  - shaping: the limits of an egress path (source x site), asked when
 *    the scheduler creates a path and again after each reload, and kept
 *    in C, never asked per message.
 *  - delivery_result: after each delivery attempt to a host; it may
 *    suspend a path or source, change throttles and adjust scores.
 *
 * Every call returns POLICY_QUEUE_OK when the handler returned a value
 * (the out structure is filled; fields it left out keep the values the
 * caller put there, which are the defaults), POLICY_QUEUE_DEFAULT when
 * there is no policy or no handler (out untouched), and
 * POLICY_QUEUE_FAILED when the handler raised, ran over its budget or
 * returned something invalid. A failure is already logged to mainlog and
 * paniclog with the message id, and the caller keeps the message queued
 * and tries again later.
 *
 * Ownership: every pointer passed in is borrowed for the call. Strings
 * in out structures are copied into their arrays.
 *
 * Thread use: the event loop thread only.
 */
#ifndef SLUICE_POLICY_QUEUE_H
#define SLUICE_POLICY_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct policy_state;

/* Bounds on declarations and on what handlers return. */
#define POLICY_QUEUE_NAME_MAX		64	/* source, pool, class, route */
#define POLICY_SITE_MAX			255	/* a site name */
#define POLICY_ROUTE_HOSTS_MAX		16	/* explicit next hops */
#define POLICY_HOST_NAME_MAX		255
#define POLICY_SOURCES_MAX		256	/* declared sources */
#define POLICY_POOLS_MAX		64
#define POLICY_CLASSES_MAX		32
#define POLICY_CLASS_HEADERS_MAX	16
#define POLICY_CLASS_PRIORITY_MAX	1000
#define POLICY_RETRY_TEXT_MAX		256

enum policy_queue_result {
	POLICY_QUEUE_OK,
	POLICY_QUEUE_DEFAULT,
	POLICY_QUEUE_FAILED,
};

/* ---- declarations: sluice.source{}, sluice.pool{}, sluice.class{} ---- */

struct policy_source_decl {
	char name[POLICY_QUEUE_NAME_MAX + 1];
	char ip[64];			/* IPv4 or IPv6 text, checked */
	char ehlo[POLICY_HOST_NAME_MAX + 1];	/* "" for primary_hostname */
};

struct policy_pool_decl {
	char name[POLICY_QUEUE_NAME_MAX + 1];
	size_t source_count;
	/* Indexes into policy_declarations.sources. */
	size_t sources[POLICY_SOURCES_MAX];
};

struct policy_class_header {
	char name[128 + 1];
	char value[1024 + 1];
};

struct policy_class_decl {
	char name[POLICY_QUEUE_NAME_MAX + 1];
	/* 1..POLICY_CLASS_PRIORITY_MAX, the class's weight among the
	 * others; a strict class (critical) is always served first. */
	unsigned priority;
	bool strict;
	char pool[POLICY_QUEUE_NAME_MAX + 1];	/* "" for "default" */
	size_t header_count;
	struct policy_class_header headers[POLICY_CLASS_HEADERS_MAX];
	/* An Exim retry rule's parameters ("F,2h,15m; G,16h,1h,1.5"), or
	 * "" to use the begin retry section. */
	char retry[POLICY_RETRY_TEXT_MAX + 1];
};

/*
 * The declarations a loaded policy made while its top level ran. A
 * policy that declares no source has source_count 0, and the scheduler
 * then uses the egress_sources option. The four default classes
 * (critical, transactional, personal, newsletter) are always present
 * unless the policy redefines one by name.
 */
struct policy_declarations {
	size_t source_count;
	struct policy_source_decl sources[POLICY_SOURCES_MAX];
	size_t pool_count;
	struct policy_pool_decl pools[POLICY_POOLS_MAX];
	size_t class_count;
	struct policy_class_decl classes[POLICY_CLASSES_MAX];
};

/* Fills out with the declarations of ps, or, with ps NULL, with the
 * four default classes and nothing else. */
void policy_declarations_get(struct policy_state *ps,
    struct policy_declarations *out);

/* ---- route(msg, domain, mx) ---- */

struct policy_mx {
	const char *name;
	unsigned preference;
};

struct policy_route_in {
	const char *msgid;
	const char *sender;		/* "" for the null sender */
	const char *domain;
	const char *class_name;
	const char *tenant;		/* "" when none */
	const char *campaign;		/* "" when none */
	const struct policy_mx *mx;	/* none with a smarthost */
	size_t mx_count;
};

struct policy_route_out {
	char site[POLICY_SITE_MAX + 1];
	char pool[POLICY_QUEUE_NAME_MAX + 1];
	char route[POLICY_QUEUE_NAME_MAX + 1];	/* R= */
	size_t host_count;		/* 0: the MX hosts (or smarthost) */
	char hosts[POLICY_ROUTE_HOSTS_MAX][POLICY_HOST_NAME_MAX + 1];
	int port;			/* 0: the default port */
};

enum policy_queue_result policy_route(struct policy_state *ps,
    const struct policy_route_in *in, struct policy_route_out *out);

/* ---- select_source(path) ---- */

struct policy_source_choice {
	const char *name;
	const char *ip;
	int score;			/* sluice.scores for (ip, site) */
	bool suspended;
	bool over_cap;			/* daily_cap reached today */
	int warmup_day;			/* 0 when not warming up */
	uint64_t sent_today;		/* to this site */
};

struct policy_path_in {
	const char *msgid;
	const char *site;
	const char *pool;
	const char *class_name;
	const char *domain;
	const struct policy_source_choice *sources;
	size_t source_count;
};

/* On POLICY_QUEUE_OK, *index is the chosen entry of in->sources. A
 * handler that returns nil leaves the choice to the default
 * (POLICY_QUEUE_DEFAULT). */
enum policy_queue_result policy_select_source(struct policy_state *ps,
    const struct policy_path_in *in, size_t *index);

/* ---- shaping(path) ---- */

/* 0 means unlimited for every field. */
struct policy_shaping {
	unsigned max_connections;
	double rate_per_second;		/* from "15/s", "600/m", "10000/h", "n/d" */
	unsigned burst;			/* tokens; 0: the default (1) */
	unsigned max_messages_per_connection;
	unsigned max_recipients_per_message;
	uint64_t daily_cap;
	/* While the path is suspended, its waiting mail goes back to
	 * select_source for another source instead of waiting. */
	bool reroute_when_suspended;
};

struct policy_shaping_in {
	const char *source_name;
	const char *source_ip;
	const char *site;
	const char *pool;
};

enum policy_queue_result policy_shaping(struct policy_state *ps,
    const struct policy_shaping_in *in, struct policy_shaping *out);

/* Rates are parsed by policy_rate_parse() of policy_tables.h. */

/* ---- delivery_result(res) ---- */

struct policy_delivery_result {
	const char *msgid;
	const char *outcome;		/* "delivered", "deferred", "failed" */
	const char *source_name;	/* "" when the system chose */
	const char *source_ip;		/* "" when the system chose */
	const char *site;
	const char *pool;
	const char *domain;
	const char *host;		/* "" when no host answered */
	const char *host_ip;
	int code;			/* 0 when no reply (connection failed) */
	const char *enhanced_code;	/* "5.7.1", or "" */
	const char *reply;		/* the reply text, or the error */
	const char *class_name;
	const char *tenant;
	const char *campaign;
	double queue_time;		/* seconds since reception */
	unsigned recipients;		/* in this result */
};

void policy_delivery_result(struct policy_state *ps,
    const struct policy_delivery_result *res);

/* ---- calls from the policy into the scheduler ---- */

/*
 * sluice.suspend(path_or_source, seconds, reason): the target is a
 * source name or IP ("ip2") or a path "source/site" ("ip2/gmail").
 * The scheduler registers this function; without one sluice.suspend
 * raises. Returns 0, or -1 with a message in error (size bytes), which
 * the Lua function raises.
 */
typedef int (*policy_suspend_fn)(void *arg, const char *source,
    const char *site, uint32_t seconds, const char *reason, char *error,
    size_t size);

void policy_set_suspend_fn(policy_suspend_fn fn, void *arg);

#endif
