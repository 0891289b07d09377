/*
 * scheduler.h - queue classes, egress paths and their ready queues.
 *
 * The delivery queue (queue.h) keeps each message on a timer until its
 * next attempt. When an attempt has routed the mail of one domain, that
 * work item (a message's recipients at one domain) enters the ready
 * queue of an egress path. A path is one source IP towards one site: a
 * mailbox provider, or any set of MX hosts. A path lets an item go only
 * when
 *  - it has a free connection (shaping: max_connections),
 *  - a rate token is there (max_message_rate with its burst),
 *  - it is not suspended (by the policy or an operator), and
 *  - its daily cap is not reached;
 * otherwise the item waits in memory, costing no CPU: a timer of the
 * path wakes it when a token returns or a suspension ends. Among the
 * waiting items, strict classes (critical) always go first, and the
 * others share by their priorities as weights (stride scheduling), so
 * none starves. Nothing here touches the disk.
 *
 * Classes, sources and pools come from the policy's declarations (see
 * lua/policy_queue.h); without a policy, the four default classes and
 * the egress_sources option. Shaping comes from the policy's shaping
 * event, asked once per path and again after a reload.
 *
 * Thread use: the loop thread. Fatal: out of memory only.
 */
#ifndef SLUICE_SCHEDULER_H
#define SLUICE_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "policy_queue.h"

struct config;
struct event_base;
struct evbuffer;
struct policy_state;
struct scheduler;
struct sched_path;

/* Classes ever known to one scheduler: the policy's maximum, plus room
 * for the ones a reload dropped (they keep their index). */
#define SCHED_CLASSES_MAX	(2 * POLICY_CLASSES_MAX)

/* The class of a message without one: transactional for authenticated
 * and local submissions, personal for the rest. */
#define SCHED_CLASS_LOCAL	"transactional"
#define SCHED_CLASS_REMOTE	"personal"

/* Called when an item may go: the caller hands its message to the
 * connection pool over the item's path and calls sched_item_done()
 * when that delivery ends. Never called from inside a scheduler call
 * made by the owner of the item. */
typedef void (*sched_go_fn)(void *arg);

enum sched_item_state {
	SCHED_ITEM_IDLE,	/* in no ready queue */
	SCHED_ITEM_READY,	/* waiting on its path */
	SCHED_ITEM_IN_FLIGHT,	/* handed to the pool */
};

/* A work item, embedded in its owner (a routed group of recipients). */
struct sched_item {
	struct sched_path *path;
	size_t class_index;
	enum sched_item_state state;
	sched_go_fn go;
	void *arg;
	/* Called instead of go, with the item idle again, when its path is
	 * suspended and its shaping sets reroute_when_suspended; NULL to
	 * wait. It is cleared once called, so an item moves only once. */
	sched_go_fn reroute;
	struct sched_item *next;	/* in the ready list */
};

struct sched_counts {
	uint64_t scheduled, ready, in_flight, suspended;
};

struct scheduler *scheduler_new(struct event_base *base,
    const struct config *config);
/* Every item must be idle. Accepts NULL. */
void scheduler_free(struct scheduler *s);

/*
 * Takes the classes, sources and pools of ps (NULL: the defaults and
 * the egress_sources option) and clears every path's shaping, so the
 * next use requests it from the policy again. Paths of sources that are
 * gone keep their waiting items until they drain. ps is borrowed for
 * the call, because each path later requests its shaping from the
 * current state.
 */
void scheduler_load(struct scheduler *s, struct policy_state *ps);

/* The index of the class called name, or of the default class for
 * local (authenticated or local) or remote mail when name is NULL,
 * empty or unknown. */
size_t scheduler_class_find(const struct scheduler *s, const char *name,
    bool local);
const char *scheduler_class_name(const struct scheduler *s, size_t index);
size_t scheduler_class_count(const struct scheduler *s);
/*
 * Of the classes that have work waiting (has[i] for i below
 * scheduler_class_count()), the one to serve next: the strict class of
 * highest priority, else the class with the lowest pass[i], whose pass
 * then moves on by its stride. *vtime is the pass of the class served
 * last, for classes that start waiting (see sched_class_wake()).
 * Returns SIZE_MAX when no class has work.
 */
size_t scheduler_class_next(const struct scheduler *s, const bool *has,
    uint64_t *pass, uint64_t *vtime);
/* Gives a class that starts waiting no credit for the time it was
 * empty. */
void sched_class_wake(uint64_t *pass, uint64_t vtime);
/* The pool a class sends through ("default" when it names none). */
const char *scheduler_class_pool(const struct scheduler *s, size_t index);
/* The class's retry rule text, or "" for the begin retry section. */
const char *scheduler_class_retry(const struct scheduler *s, size_t index);
/* Header fields the class injects; index < count. */
size_t scheduler_class_header_count(const struct scheduler *s,
    size_t index);
const struct policy_class_header *scheduler_class_header(
    const struct scheduler *s, size_t index, size_t header);

struct dns_result;

/*
 * Routes the mail of in->domain for a message of class_index. out gets
 * the default site (the most preferred MX host names of mx, lower case,
 * sorted and joined with ","; the first smarthost when mx is NULL; else
 * the domain) and the class's pool, then the policy's
 * route handler may change them and name a router, a port and hosts of
 * its own. in->class_name and in->mx are filled here; the caller sets
 * the rest. Returns the handler's result: out keeps the defaults unless
 * it is POLICY_QUEUE_OK, and POLICY_QUEUE_FAILED (already logged) means
 * the mail must wait.
 */
enum policy_queue_result scheduler_route(struct scheduler *s,
    struct policy_route_in *in, size_t class_index,
    const struct dns_result *mx, struct policy_route_out *out);

/*
 * Chooses the path of one message's mail for domain at site, from the
 * sources of pool (the policy's select_source event, else a choice
 * weighted by score among sources not suspended and not over their
 * cap). Without any source, the path has no source and the system
 * picks the address. Returns the path, or NULL with *error set (caller
 * frees) when the pool does not exist or the policy failed.
 */
struct sched_path *scheduler_choose(struct scheduler *s, const char *msgid,
    const char *site, const char *pool, size_t class_index,
    const char *domain, char **error);

/* The path's source: IP ("" for the system's choice), EHLO name (NULL
 * for the default), name, and its site and "source/site" key. */
const char *sched_path_source_ip(const struct sched_path *p);
const char *sched_path_helo(const struct sched_path *p);
const char *sched_path_source_name(const struct sched_path *p);
const char *sched_path_site(const struct sched_path *p);
const char *sched_path_key(const struct sched_path *p);
const char *sched_path_pool(const struct sched_path *p);
/* True while the path is suspended at now. */
bool sched_path_suspended(const struct sched_path *p, time_t now);
/* Messages per connection on this path; 0 for no own limit. */
unsigned sched_path_max_messages(const struct sched_path *p);
/* Connections at once on this path; 0 for no limit. */
unsigned sched_path_max_connections(const struct sched_path *p);
/* Recipients per message on this path; 0 for no own limit. */
unsigned sched_path_max_recipients(const struct sched_path *p);

/* Puts item in its path's ready queue; go runs when it may leave. */
void sched_item_submit(struct sched_path *path, struct sched_item *item,
    size_t class_index, sched_go_fn go, void *arg);
/* Ends an item in flight (its delivery ended; sent counts it against
 * the daily cap) or takes a ready one out of its queue. */
void sched_item_done(struct sched_item *item, bool sent);

/*
 * Suspends a path (site not NULL) or every path of a source, for
 * seconds, or resumes with seconds 0. source is a source name or IP.
 * who and reason go to the log. Returns 0, or -1 with a message in
 * error.
 */
int scheduler_suspend(struct scheduler *s, const char *source,
    const char *site, uint32_t seconds, const char *reason, const char *who,
    char *error, size_t size);

/*
 * Adds a line for every class, and the suspension of every suspended
 * path, to the summary. The queue adds the counts of its messages and
 * prints it (see queue_summary() in queue.h).
 */
struct sched_summary;
struct sched_summary *sched_summary_new(void);
void sched_summary_add(struct sched_summary *sum, const char *kind,
    const char *name, const struct sched_counts *add);
void scheduler_summarize(const struct scheduler *s,
    struct sched_summary *sum);
/* Writes the summary, sorted, to out, and frees it. */
void sched_summary_print(struct sched_summary *sum, struct evbuffer *out);

#endif
