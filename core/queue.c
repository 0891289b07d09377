/*
 * queue.c - the delivery queue (see queue.h).
 *
 * Objects, from the outside in:
 *  - struct queue_msg: one message on the spool, with the timer of its
 *    next attempt; it lives until the message is completed or the daemon
 *    stops.
 *  - struct attempt: one delivery attempt of a message. It holds the
 *    parsed -H, the locked -D and one group per recipient domain.
 *  - struct group: the recipients of one domain, their route (the hosts
 *    and addresses to try, in order) and the SMTP client of the host
 *    being tried.
 * An attempt ends when every group has ended and every journal write it
 * queued has been reported. Callbacks of DNS lookups, SMTP clients and
 * the spool store never run before the call that started them returns,
 * so no object is freed under its own caller.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bounce.h"
#include "clock.h"
#include "dns.h"
#include "log.h"
#include "log_line.h"
#include "msglog.h"
#include "policy.h"
#include "policy_queue.h"
#include "queue.h"
#include "retry.h"
#include "retry_hosts.h"
#include "scheduler.h"
#include "smtp_client.h"
#include "smtp_pool.h"
#include "spool_header.h"
#include "spool_store.h"
#include "util.h"

#define QUEUE_SMARTHOSTS_MAX	16
#define QUEUE_HOST_ITEM_MAX	512
/* Addresses tried per group in one attempt, over all hosts. */
#define QUEUE_ADDRESSES_MAX	64
/* A bit of queue_msg.force besides the QUEUE_FORCE_* flags: the attempt
 * comes from queue_force(). */
#define QUEUE_FORCED		(1u << 31)
/* Exim's code in "defer (-54)": no host is past its retry time. */
#define QUEUE_ERRNO_HOST_RETRY	(-54)

struct queue;
struct attempt;
struct smarthost_lookup;

struct route_host {
	char *name;
	char ip[INET6_ADDRSTRLEN];
	int port;
};

struct group {
	struct attempt *attempt;
	char *domain;
	const char **rcpts;		/* borrowed from the attempt's header */
	/* Their spool records, for the DSN parameters; borrowed too. */
	const struct spool_recipient **dsn;
	size_t rcpt_count;

	struct dns_lookup *lookup;
	struct smarthost_lookup *smarthost_lookup;	/* context of lookup */
	size_t smarthost_index;		/* next smarthost item to resolve */
	struct route_host *hosts;	/* addresses to try, in order */
	size_t host_count;
	size_t host_index;

	struct smtp_pool_request *request;	/* the message on its way */
	struct smtp_result *result;	/* of the last host tried */
	size_t hosts_waiting;		/* skipped: before their retry time */
	size_t journal_pending;
	bool done;

	/* The route: where the policy (or the default) sends the group.
	 * explicit_hosts replaces the MX hosts or the smarthost. */
	char site[POLICY_SITE_MAX + 1];
	char pool[POLICY_QUEUE_NAME_MAX + 1];
	char route[POLICY_QUEUE_NAME_MAX + 1];	/* R=, "" for the default */
	char **explicit_hosts;
	size_t explicit_count;
	int port;			/* 0: delivery_port */
	struct sched_path *path;	/* once a source is chosen */
	struct sched_item item;		/* on that path */
	bool rerouted;			/* moved off a suspended path */
};

struct attempt {
	struct queue_msg *msg;
	struct spool_header *header;
	int data_fd;			/* locked -D */
	struct group *groups;
	size_t group_count;
	size_t groups_running;
	size_t journal_pending;
	bool changed;			/* -H must be rewritten at the end */
	bool abandoned;			/* given up by a stopping daemon */
	/* Recipients failed in this attempt, for the bounce, and deferred,
	 * for a delay warning. */
	struct bounce_list failures;
	struct bounce_list deferrals;
	/* Delivered with NOTIFY=SUCCESS to a server without DSN. */
	struct bounce_list relayed;
	bool end_prepared;		/* attempt_prepare_end() has run */
	bool frozen_logged;		/* "Frozen (...)" is written */
	bool bounce_inline;		/* inside bounce_inject() */
	bool timed_out;			/* frozen past timeout_frozen_after */
	const char *fail_all;		/* fail every recipient: why, or NULL */
	bool forced;			/* by queue_force(): retry times pass */
	uint64_t retry_delay;		/* before the next attempt, usec */
};

/* One per queued message, so its members are ordered by size to leave
 * no padding: a million of them must stay small. */
struct queue_msg {
	struct queue *queue;
	struct clock_timer *timer;
	struct attempt *attempt;	/* while one runs */
	struct queue_waiter *waiters;	/* told when the attempt ends */
	struct queue_waiter *hold_waiters;	/* for the rewrites */
	/* Its undelivered domains as "a\0b\0\0" (NULL until its -H file
	 * was first read), for the summary. */
	char *domains;
	/* Due while delivery_attempts_max attempts run: waiting in its
	 * class's due list. */
	struct queue_msg *due_prev, *due_next;
	struct queue_msg *prev, *next;
	struct queue_msg *hash_next;	/* in the queue's id table */
	struct retry_state retry;	/* of its deferrals while queued */
	uint64_t attempts_ended;
	unsigned force;			/* QUEUE_FORCE_* while starting one */
	unsigned holds;			/* operators' actions running */
	unsigned rewrites;		/* -H rewrites not yet on disk */
	int rewrite_lock_fd;		/* -D, locked until they are, or -1 */
	char id[MSGID_SIZE];
	uint8_t class_index;		/* its queue class */
	bool removing;
	bool start_after_rewrite;	/* an attempt waits for the rewrites */
	bool due;
};

/* Messages due while the attempts are at their maximum, per class. */
struct due_list {
	struct queue_msg *head, *tail;
	uint64_t pass;
};

struct queue {
	struct event_base *base;
	const struct config *config;
	struct spool_store *store;
	struct dns_resolver *resolver;
	struct smtp_pool *pool;		/* outbound connections */
	struct scheduler *sched;	/* classes and egress paths */
	struct retry_rules retry_rules;	/* "begin retry", parsed */
	struct retry_hosts *retry_hosts;	/* host-level retry times */
	struct queue_msg *messages;
	/* The messages by id: a power of two of chains, at least as many
	 * as messages. */
	struct queue_msg **ids;
	size_t id_buckets;
	struct due_list due[SCHED_CLASSES_MAX];
	uint64_t due_vtime;
	size_t due_count;
	struct clock_timer *due_timer;	/* starts due messages */
	struct queue_stats stats;
	bool stopping;
	queue_done_fn done;
	void *done_arg;
	struct clock_timer *drain_timer;
	bool dont_deliver;		/* -N: every attempt pretends */
};

static void attempt_start(struct queue_msg *msg);
static void group_next_host(struct group *g);
static void group_finish(struct group *g);
static void attempt_maybe_end(struct attempt *a);
static bool attempt_pass_frozen(struct queue_msg *msg, struct attempt *a);
static void queue_msg_attempt_ended(struct queue_msg *msg);
static void queue_msg_rewritten(struct queue_msg *msg);
static void queue_msg_learn(struct queue_msg *msg,
    const struct spool_header *h);

static const char *
group_router(const struct group *g)
{
	const char *smarthost = g->attempt->msg->queue->config->smarthost;

	if (g->route[0] != '\0')
		return g->route;
	return smarthost != NULL && smarthost[0] != '\0' ?
	    LOG_ROUTER_SMARTHOST : LOG_ROUTER_DNSLOOKUP;
}

static int64_t
attempt_queue_usec(const struct attempt *a)
{
	struct timeval now;

	clock_now_tv(&now);
	return ((int64_t)now.tv_sec - a->header->received_time) * 1000000 +
	    now.tv_usec - a->header->received_time_usec;
}

static size_t
queue_id_bucket(const struct queue *queue, const char *id)
{
	return (size_t)(hash_fnv(HASH_FNV_START, id, strlen(id)) &
	    (queue->id_buckets - 1));
}

static struct queue_msg *
queue_find(struct queue *queue, const char *id)
{
	if (queue->id_buckets == 0)
		return NULL;
	for (struct queue_msg *m = queue->ids[queue_id_bucket(queue, id)];
	    m != NULL; m = m->hash_next)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

/* Adds msg to the id table, doubling it when it gets full. */
static void
queue_id_insert(struct queue *queue, struct queue_msg *msg)
{
	size_t b;

	if (queue->stats.messages >= queue->id_buckets) {
		size_t old = queue->id_buckets;
		struct queue_msg **table = queue->ids;

		queue->id_buckets = old == 0 ? 1024 : old * 2;
		queue->ids = xcalloc(queue->id_buckets, sizeof(*queue->ids));
		for (size_t i = 0; i < old; i++) {
			while (table[i] != NULL) {
				struct queue_msg *m = table[i];

				table[i] = m->hash_next;
				b = queue_id_bucket(queue, m->id);
				m->hash_next = queue->ids[b];
				queue->ids[b] = m;
			}
		}
		free(table);
	}
	b = queue_id_bucket(queue, msg->id);
	msg->hash_next = queue->ids[b];
	queue->ids[b] = msg;
}

static void
queue_id_remove(struct queue *queue, struct queue_msg *msg)
{
	struct queue_msg **link = &queue->ids[queue_id_bucket(queue, msg->id)];

	while (*link != NULL && *link != msg)
		link = &(*link)->hash_next;
	if (*link == msg)
		*link = msg->hash_next;
}

/* ---- messages due while the attempts are at their maximum ---- */

static void
queue_due_remove(struct queue_msg *msg)
{
	struct due_list *l = &msg->queue->due[msg->class_index];

	if (!msg->due)
		return;
	if (msg->due_prev != NULL)
		msg->due_prev->due_next = msg->due_next;
	else
		l->head = msg->due_next;
	if (msg->due_next != NULL)
		msg->due_next->due_prev = msg->due_prev;
	else
		l->tail = msg->due_prev;
	msg->due = false;
	msg->due_prev = msg->due_next = NULL;
	msg->queue->due_count--;
}

static void
queue_due_add(struct queue_msg *msg)
{
	struct queue *queue = msg->queue;
	struct due_list *l;

	if (msg->due)
		return;
	if (msg->domains == NULL) {
		/* A new arrival, not attempted yet: its class decides its
		 * place, so read it now. An unreadable -H leaves the default
		 * class; the attempt reports the error. */
		struct spool_header *h = NULL;
		char *error = NULL;

		if (spool_store_read_header(queue->store, msg->id, &h,
		    &error) == 0) {
			queue_msg_learn(msg, h);
			spool_header_free(h);
			free(h);
		} else {
			free(error);
			msg->class_index = (uint8_t)scheduler_class_find(
			    queue->sched, NULL, false);
		}
	}
	l = &queue->due[msg->class_index];
	if (l->head == NULL)
		sched_class_wake(&l->pass, queue->due_vtime);
	msg->due = true;
	msg->due_next = NULL;
	msg->due_prev = l->tail;
	if (l->tail != NULL)
		l->tail->due_next = msg;
	else
		l->head = msg;
	l->tail = msg;
	queue->due_count++;
}

static bool
queue_attempts_full(const struct queue *queue)
{
	return queue->stats.attempts_running >=
	    (size_t)queue->config->delivery_attempts_max;
}

/* Starts due messages, highest class first, while there is room. */
static void
queue_due_cb(void *arg)
{
	struct queue *queue = arg;
	size_t classes = scheduler_class_count(queue->sched);

	while (queue->due_count > 0 && !queue_attempts_full(queue) &&
	    !queue->stopping) {
		bool has[SCHED_CLASSES_MAX];
		uint64_t pass[SCHED_CLASSES_MAX];
		struct queue_msg *msg;
		size_t next;

		for (size_t i = 0; i < classes; i++) {
			has[i] = queue->due[i].head != NULL;
			pass[i] = queue->due[i].pass;
		}
		next = scheduler_class_next(queue->sched, has, pass,
		    &queue->due_vtime);
		if (next == SIZE_MAX)
			break;
		queue->due[next].pass = pass[next];
		msg = queue->due[next].head;
		queue_due_remove(msg);
		attempt_start(msg);	/* may free msg */
	}
}

static void
queue_due_wake(struct queue *queue)
{
	if (queue->due_count > 0 && !clock_timer_pending(queue->due_timer))
		clock_timer_arm(queue->due_timer, 0);
}

static void
queue_msg_free(struct queue_msg *msg)
{
	struct queue *queue = msg->queue;

	queue_due_remove(msg);
	queue_id_remove(queue, msg);
	if (msg->prev != NULL)
		msg->prev->next = msg->next;
	else
		queue->messages = msg->next;
	if (msg->next != NULL)
		msg->next->prev = msg->prev;
	if (msg->rewrite_lock_fd >= 0)
		close(msg->rewrite_lock_fd);
	clock_timer_free(msg->timer);
	free(msg->domains);
	free(msg);
	queue->stats.messages--;
}

static void queue_msg_notify(struct queue_msg *msg, bool attempted);

static void
queue_attempt_cb(void *arg)
{
	struct queue_msg *msg = arg;
	struct queue *queue = msg->queue;
	char id[MSGID_SIZE];

	if (msg->force == 0 && queue_attempts_full(queue)) {
		/* Waits in memory, without its files open, for a free slot. */
		queue_due_add(msg);
		return;
	}
	strlcpy_s(id, msg->id, sizeof(id));
	attempt_start(msg);	/* may free msg */
	if ((msg = queue_find(queue, id)) == NULL || msg->start_after_rewrite)
		return;
	/* A forced attempt that had to wait for a -H rewrite has now started
	 * or been rejected. Its flags are spent, and if it did not start, its
	 * waiters are notified. */
	msg->force = 0;
	if (msg->attempt == NULL)
		queue_msg_notify(msg, false);
}

static void
queue_schedule(struct queue_msg *msg, uint64_t delay_usec)
{
	if (msg->queue->stopping)
		return;
	clock_timer_arm(msg->timer, delay_usec);
}

/* ---- classes and the scheduler ---- */

void
queue_policy_reloaded(struct queue *queue)
{
	struct policy_state *ps = policy_current();

	scheduler_load(queue->sched, ps);
	policy_state_unref(ps);
}

/* sluice.suspend() from the policy. */
static int
queue_policy_suspend(void *arg, const char *source, const char *site,
    uint32_t seconds, const char *reason, char *error, size_t size)
{
	struct queue *queue = arg;

	return scheduler_suspend(queue->sched, source, site, seconds, reason,
	    "policy", error, size);
}

struct scheduler *
queue_scheduler(struct queue *queue)
{
	return queue->sched;
}

/* Learns the class and the undelivered domains of msg from its -H. */
static void
queue_msg_learn(struct queue_msg *msg, const struct spool_header *h)
{
	const char *name = spool_header_get_acl(h, SPOOL_ACL_CLASS);
	size_t size = 1, used = 0;
	char *domains;

	msg->class_index = (uint8_t)scheduler_class_find(msg->queue->sched,
	    name, h->local || h->auth_id != NULL);
	for (size_t i = 0; i < h->recipients_count; i++)
		size += strlen(h->recipients[i].address) + 1;
	domains = xcalloc(1, size);
	for (size_t i = 0; i < h->recipients_count; i++) {
		const char *address = h->recipients[i].address;
		const char *at = strrchr(address, '@');
		const char *domain = at != NULL ? at + 1 : "";
		bool seen = false;

		if (spool_header_is_delivered(h, address))
			continue;
		for (size_t off = 0; off < used && !seen;
		    off += strlen(domains + off) + 1)
			seen = strcasecmp(domains + off, domain) == 0;
		if (seen)
			continue;
		strlcpy_s(domains + used, domain, size - used);
		used += strlen(domain) + 1;
	}
	free(msg->domains);
	/* Sized by the domains, not by the whole addresses. */
	msg->domains = xmalloc(used + 1);
	memcpy(msg->domains, domains, used);
	msg->domains[used] = '\0';
	free(domains);
}

struct queue *
queue_new(struct event_base *base, const struct config *config,
    struct spool_store *store, struct dns_resolver *resolver)
{
	struct queue *queue = xcalloc(1, sizeof(*queue));
	char *error = NULL;

	queue->base = base;
	queue->config = config;
	queue->store = store;
	queue->resolver = resolver;
	queue->pool = smtp_pool_new(base, config, resolver);
	queue->sched = scheduler_new(base, config);
	queue->due_timer = clock_timer_new(base, queue_due_cb, queue);
	queue_policy_reloaded(queue);
	policy_set_suspend_fn(queue_policy_suspend, queue);
	if (retry_rules_parse(config, &queue->retry_rules, &error) < 0) {
		/* sluice -brt reports the same error with its file and line. */
		log_write(LOG_MAIN | LOG_PANIC, NULL, "retry rules ignored, "
		    "deferred messages are retried every 15 minutes: %s", error);
		free(error);
	}
	if (msglog_enable(config->spool_directory,
	    config->split_spool_directory) < 0)
		log_write(LOG_MAIN | LOG_PANIC, NULL, "message logs not written: "
		    "spool_directory is longer than %d bytes",
		    MSGLOG_DIRECTORY_MAX);
	queue->retry_hosts = retry_hosts_new(config->spool_directory, &error);
	if (error != NULL) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "host retry times not "
		    "loaded, every host is tried: %s", error);
		free(error);
	}
	return queue;
}

void
queue_set_dont_deliver(struct queue *queue, bool dont_deliver)
{
	queue->dont_deliver = dont_deliver;
}

void
queue_free(struct queue *queue)
{
	if (queue == NULL)
		return;
	if (queue->stats.attempts_running > 0)
		fatal_bug("queue freed with %zu attempts running",
		    queue->stats.attempts_running);
	while (queue->messages != NULL)
		queue_msg_free(queue->messages);
	free(queue->ids);
	clock_timer_free(queue->drain_timer);
	clock_timer_free(queue->due_timer);
	smtp_pool_free(queue->pool);
	policy_set_suspend_fn(NULL, NULL);
	scheduler_free(queue->sched);
	retry_rules_free(&queue->retry_rules);
	retry_hosts_free(queue->retry_hosts);
	free(queue);
}

void
queue_add(struct queue *queue, const char *id)
{
	queue_add_header(queue, id, NULL);
}

void
queue_add_header(struct queue *queue, const char *id,
    const struct spool_header *header)
{
	struct queue_msg *msg;

	if (queue_find(queue, id) != NULL)
		return;
	msg = xcalloc(1, sizeof(*msg));
	msg->queue = queue;
	strlcpy_s(msg->id, id, sizeof(msg->id));
	msg->rewrite_lock_fd = -1;
	msg->timer = clock_timer_new(queue->base, queue_attempt_cb, msg);
	msg->next = queue->messages;
	if (queue->messages != NULL)
		queue->messages->prev = msg;
	queue->messages = msg;
	queue_id_insert(queue, msg);
	queue->stats.messages++;
	if (header != NULL)
		queue_msg_learn(msg, header);
	queue_schedule(msg, 0);
}

void
queue_stats(const struct queue *queue, struct queue_stats *out)
{
	*out = queue->stats;
}

/* ---- the summary ---- */

static void
summary_add_group(struct sched_summary *sum, const struct queue *queue,
    const struct queue_msg *msg, const char *domain, const char *site,
    const struct sched_path *path, const struct sched_counts *c)
{
	sched_summary_add(sum, "total", "", c);
	sched_summary_add(sum, "class", scheduler_class_name(queue->sched,
	    msg->class_index), c);
	sched_summary_add(sum, "domain", domain, c);
	if (site != NULL && site[0] != '\0')
		sched_summary_add(sum, "site", site, c);
	if (path != NULL)
		sched_summary_add(sum, "path", sched_path_key(path), c);
}

void
queue_summary(struct queue *queue, struct evbuffer *out)
{
	struct sched_summary *sum = sched_summary_new();
	static const struct sched_counts none;
	time_t now = clock_now();

	sched_summary_add(sum, "total", "", &none);
	for (const struct queue_msg *m = queue->messages; m != NULL;
	    m = m->next) {
		const struct attempt *a = m->attempt;

		if (a == NULL) {
			struct sched_counts c = { .scheduled = 1 };

			for (const char *d = m->domains; d != NULL && *d != '\0';
			    d += strlen(d) + 1)
				summary_add_group(sum, queue, m, d, NULL, NULL, &c);
			continue;
		}
		for (size_t i = 0; i < a->group_count; i++) {
			const struct group *g = &a->groups[i];
			struct sched_counts c = { 0 };

			if (g->done)
				continue;
			switch (g->item.state) {
			case SCHED_ITEM_IDLE:
				c.scheduled = 1;	/* routing */
				break;
			case SCHED_ITEM_READY:
				c.ready = 1;
				c.suspended = sched_path_suspended(g->path, now);
				break;
			case SCHED_ITEM_IN_FLIGHT:
				c.in_flight = 1;
				break;
			}
			summary_add_group(sum, queue, m, g->domain, g->site,
			    g->item.state != SCHED_ITEM_IDLE ? g->path : NULL, &c);
		}
	}
	scheduler_summarize(queue->sched, sum);
	sched_summary_print(sum, out);
}

/* ---- the end of a message ---- */

static void
queue_removed_cb(void *arg, int result, const char *error)
{
	struct queue_msg *msg = arg;

	if (result != 0) {
		/* The -H file may still be there: the message would come
		 * back at the next start, with every recipient journaled. */
		log_write(LOG_MAIN | LOG_PANIC, msg->id,
		    "cannot remove spool files: %s", error);
	}
	queue_msg_attempt_ended(msg);
	queue_msg_free(msg);
}

static void
queue_rewrite_cb(void *arg, int result, const char *error)
{
	struct queue_msg *msg = arg;

	/* The journal stays when the rewrite fails, so nothing is lost. */
	if (result != 0)
		log_write(LOG_MAIN | LOG_PANIC, msg->id,
		    "cannot rewrite the -H file: %s", error);
	queue_msg_rewritten(msg);
}

static size_t
attempt_undelivered(const struct attempt *a)
{
	size_t n = 0;

	for (size_t i = 0; i < a->header->recipients_count; i++)
		if (!spool_header_is_delivered(a->header,
		    a->header->recipients[i].address))
			n++;
	return n;
}

/*
 * Describes the last result for address as a retry rule's error
 * selector sees it ("refused", "timeout_connect", "rcpt_451", ...). A
 * failure with no selector of its own matches only "*" rules.
 */
static void rcpt_retry_error(const struct smtp_rcpt_result *rcpt,
    struct retry_error *out);

static void
attempt_retry_error(const struct attempt *a, const char *address,
    struct retry_error *out, const char **host_name)
{
	const struct smtp_rcpt_result *rcpt = NULL;

	memset(out, 0, sizeof(*out));
	*host_name = NULL;
	for (size_t i = 0; i < a->group_count && rcpt == NULL; i++) {
		const struct smtp_result *r = a->groups[i].result;

		for (size_t j = 0; r != NULL && j < r->rcpt_count; j++) {
			if (strcmp(r->rcpts[j].address, address) == 0) {
				rcpt = &r->rcpts[j];
				*host_name = r->host_name;
				break;
			}
		}
	}
	if (rcpt != NULL)
		rcpt_retry_error(rcpt, out);
}

/* Describes one recipient's result for the error selectors of retry
 * rules; out must be zeroed. */
static void
rcpt_retry_error(const struct smtp_rcpt_result *rcpt, struct retry_error *out)
{
	switch (rcpt->kind) {
	case SMTP_ERROR_CONNECT:
		if (rcpt->error == ECONNREFUSED)
			out->kind = RETRY_ERROR_REFUSED;
		break;
	case SMTP_ERROR_TIMEOUT:
		out->kind = RETRY_ERROR_TIMEOUT;
		out->connect = rcpt->phase == SMTP_PHASE_CONNECT;
		break;
	case SMTP_ERROR_CLOSED:
		out->kind = RETRY_ERROR_LOST_CONNECTION;
		break;
	case SMTP_ERROR_TLS:
	case SMTP_ERROR_TLS_REQUIRED:
		out->kind = RETRY_ERROR_TLS_REQUIRED;
		break;
	case SMTP_ERROR_REPLY:
		if (rcpt->code < 400 || rcpt->code > 499)
			break;
		if (rcpt->phase == SMTP_PHASE_MAIL)
			out->kind = RETRY_ERROR_MAIL_4XX;
		else if (rcpt->phase == SMTP_PHASE_RCPT)
			out->kind = RETRY_ERROR_RCPT_4XX;
		else if (rcpt->phase >= SMTP_PHASE_DATA)
			out->kind = RETRY_ERROR_DATA_4XX;
		snprintf(out->code, sizeof(out->code), "%d", rcpt->code);
		break;
	default:
		break;
	}
}

/*
 * Records a deferral of the message and returns the delay before its
 * next attempt, in microseconds. The first retry rule for its first
 * undelivered recipient and the failure of that recipient sets the
 * delay, from the message's deferrals since it was queued. Like Exim,
 * the rule is looked up for the recipient address and for the name of
 * the host tried. Without rules the delay is QUEUE_RETRY_INTERVAL_USEC.
 */
static uint64_t
attempt_retry_delay(struct attempt *a)
{
	struct queue_msg *msg = a->msg;
	const struct retry_rule *rule = NULL;
	const char *sender = a->header->sender;
	const char *class_retry = scheduler_class_retry(msg->queue->sched,
	    msg->class_index);
	struct retry_rule own;
	bool have_own = false;
	time_t now = clock_now();

	if (class_retry[0] != '\0') {
		/* The class names its own schedule, checked when the policy
		 * declared it; it replaces the begin retry section. */
		char *line = xasprintf("* * %s", class_retry);
		char *error = NULL;

		have_own = retry_rule_parse(line, &own, &error) == 0;
		if (have_own) {
			rule = &own;
		} else {
			log_write(LOG_MAIN | LOG_PANIC, msg->id, "retry rule of "
			    "queue class %s ignored: %s", scheduler_class_name(
			    msg->queue->sched, msg->class_index), error);
			free(error);
		}
		free(line);
	}
	for (size_t i = 0; rule == NULL && i < a->header->recipients_count;
	    i++) {
		const char *address = a->header->recipients[i].address;
		struct retry_error failure;
		const char *host_name;

		if (spool_header_is_delivered(a->header, address))
			continue;
		attempt_retry_error(a, address, &failure, &host_name);
		rule = retry_rules_find(&msg->queue->retry_rules, address,
		    host_name, &failure, sender != NULL ? sender : "");
		break;
	}
	if (rule == NULL)
		return QUEUE_RETRY_INTERVAL_USEC;

	/* Past the final cutoff, the caller fails the message. */
	retry_state_update(&msg->retry, rule, now, RETRY_INTERVAL_MAX_DEFAULT,
	    (uint32_t)random());
	if (have_own)
		retry_rule_free(&own);
	if (msg->retry.next_try <= now)
		return 1000000;
	return (uint64_t)(msg->retry.next_try - now) * 1000000;
}

static void
attempt_free(struct attempt *a)
{
	for (size_t i = 0; i < a->group_count; i++) {
		struct group *g = &a->groups[i];

		for (size_t j = 0; j < g->host_count; j++)
			free(g->hosts[j].name);
		free(g->hosts);
		free(g->rcpts);
		free(g->dsn);
		free(g->domain);
		for (size_t j = 0; j < g->explicit_count; j++)
			free(g->explicit_hosts[j]);
		free(g->explicit_hosts);
		sched_item_done(&g->item, false);
		smtp_result_free(g->result);
	}
	free(a->groups);
	bounce_list_clear(&a->failures);
	bounce_list_clear(&a->deferrals);
	bounce_list_clear(&a->relayed);
	if (a->data_fd >= 0)
		close(a->data_fd);	/* releases the lock */
	if (a->header != NULL) {
		spool_header_free(a->header);
		free(a->header);
	}
	free(a);
}

static void
queue_check_drained(struct queue *queue)
{
	if (queue->stopping && queue->stats.attempts_running == 0 &&
	    queue->done != NULL) {
		queue_done_fn done = queue->done;

		queue->done = NULL;
		clock_timer_cancel(queue->drain_timer);
		done(queue->done_arg);
	}
}

/* ---- failures: retry timeouts, bounces and frozen bounces ---- */

/* The ACL variable that keeps the message's retry state in its -H file
 * across restarts: "<first failed> <last try> <next try>", in seconds. */
#define QUEUE_ACL_RETRY		"acl_m_sluice_retry"

/* The spool record of address, borrowed from the attempt's header. */
static const struct spool_recipient *
attempt_recipient(const struct attempt *a, const char *address)
{
	for (size_t i = 0; i < a->header->recipients_count; i++)
		if (strcmp(a->header->recipients[i].address, address) == 0)
			return &a->header->recipients[i];
	return NULL;
}

/* The remote reply that decided address in r (borrowed), or NULL. */
static const char *
result_reply(const struct smtp_result *r, const char *address)
{
	for (size_t i = 0; r != NULL && i < r->rcpt_count; i++)
		if (strcmp(r->rcpts[i].address, address) == 0)
			return r->rcpts[i].reply;
	return NULL;
}

/* The router name for the "**" line of address. */
static const char *
attempt_router(const struct attempt *a, const char *address)
{
	for (size_t i = 0; i < a->group_count; i++)
		for (size_t j = 0; j < a->groups[i].rcpt_count; j++)
			if (strcmp(a->groups[i].rcpts[j], address) == 0)
				return group_router(&a->groups[i]);
	return LOG_ROUTER_DNSLOOKUP;
}

/* Remembers a delivered recipient that asked for a success notice
 * which the server r cannot send, because it does not offer DSN. */
static void
attempt_note_success(struct attempt *a, const struct smtp_result *r,
    const struct smtp_rcpt_result *rcpt)
{
	const struct spool_recipient *record =
	    attempt_recipient(a, rcpt->address);

	if (r->dsn || record == NULL ||
	    !bounce_notify_success(record->dsn_flags))
		return;
	bounce_list_add(&a->relayed, rcpt->address, record, r->host_name,
	    r->ip, rcpt->reply, "relayed");
}

/* Loads the retry state that an earlier process left in the -H file,
 * when this process has none for the message yet. */
static void
attempt_load_retry(struct attempt *a)
{
	const char *text = spool_header_get_acl(a->header, QUEUE_ACL_RETRY);
	struct retry_state *state = &a->msg->retry;
	long long first, last, next;

	if (state->first_failed != 0 || text == NULL)
		return;
	if (sscanf(text, "%lld %lld %lld", &first, &last, &next) != 3 ||
	    first <= 0 || last < first || next < last)
		return;		/* not ours: start afresh */
	state->first_failed = (time_t)first;
	state->last_try = (time_t)last;
	state->next_try = (time_t)next;
}

/* Stores the message's retry state in the -H file. */
static void
attempt_save_retry(struct attempt *a)
{
	const struct retry_state *state = &a->msg->retry;
	char text[80];

	if (state->first_failed == 0)
		return;
	snprintf(text, sizeof(text), "%lld %lld %lld",
	    (long long)state->first_failed, (long long)state->last_try,
	    (long long)state->next_try);
	spool_header_set_acl(a->header, QUEUE_ACL_RETRY, text);
	a->changed = true;
}

/* Fails every undelivered recipient for reason; the "**" lines name
 * the router and transport when with_route is set. */
static void
attempt_fail_undelivered(struct attempt *a, const char *reason,
    bool with_route)
{
	struct spool_header *h = a->header;

	for (size_t i = 0; i < h->recipients_count; i++) {
		const char *address = h->recipients[i].address;
		struct log_failure failure = {
			.address = address,
			.sender = h->sender != NULL ? h->sender : "",
			.router = with_route ? attempt_router(a, address) : NULL,
			.transport = with_route ? LOG_TRANSPORT_REMOTE : NULL,
			.message = reason,
			.deliver_usec = -1,
		};

		if (spool_header_is_delivered(h, address))
			continue;
		log_line_failure(a->msg->id, &failure);
		a->msg->queue->stats.failed++;
		bounce_list_add(&a->failures, address, &h->recipients[i], NULL,
		    NULL, NULL, reason);
		/* The -H rewrite at the end of the attempt records it. */
		spool_header_mark_delivered(h, address);
		a->changed = true;
	}
}

/*
 * True if a deferral of address now passes the final cutoff of its
 * retry rule, so that it is a failure instead. The retry state of the
 * message is left as it is; attempt_retry_delay() updates it.
 */
static bool
attempt_defer_expires(struct attempt *a, const char *address)
{
	struct queue_msg *msg = a->msg;
	const char *sender = a->header->sender;
	const struct retry_rule *rule;
	struct retry_state state;
	struct retry_error failure;
	const char *host_name;

	attempt_load_retry(a);
	if (msg->retry.first_failed == 0)
		return false;	/* a first failure starts the clock */
	attempt_retry_error(a, address, &failure, &host_name);
	rule = retry_rules_find(&msg->queue->retry_rules, address, host_name,
	    &failure, sender != NULL ? sender : "");
	if (rule == NULL)
		return false;
	state = msg->retry;
	retry_state_update(&state, rule, clock_now(),
	    RETRY_INTERVAL_MAX_DEFAULT, 0);
	return state.expired;
}

/*
 * A message with the null sender gets no bounce. As Exim does, its
 * failed recipients stay undelivered and the message is frozen until an
 * operator acts or it is older than ignore_bounce_errors_after. From
 * then on its failures stand and it is discarded.
 */
static void
attempt_freeze_failed_bounce(struct attempt *a)
{
	const struct config *config = a->msg->queue->config;
	struct spool_header *h = a->header;
	time_t now = clock_now();

	if (now - h->received_time >= config->ignore_bounce_errors_after) {
		for (size_t i = 0; i < a->failures.count; i++)
			log_write(LOG_MAIN, a->msg->id, "%s: error ignored",
			    a->failures.items[i].address);
		return;
	}
	for (size_t i = 0; i < a->failures.count; i++)
		spool_header_unmark_delivered(h, a->failures.items[i].address);
	h->frozen = true;
	h->frozen_at = now;
	a->changed = true;
	a->frozen_logged = true;
	log_write(LOG_MAIN, a->msg->id, "Frozen (delivery error message)");
}

static void
attempt_bounce_cb(void *arg, const char *id)
{
	struct attempt *a = arg;

	if (id != NULL)
		queue_add(a->msg->queue, id);
	a->journal_pending--;
	if (!a->bounce_inline)
		attempt_maybe_end(a);
}

/* Stores a bounce or warning; the attempt waits for it like for a
 * journal write, and attempt_bounce_cb() ends it. */
static void
attempt_inject(struct attempt *a, const struct bounce_content *content)
{
	struct queue *queue = a->msg->queue;

	a->journal_pending++;
	a->bounce_inline = true;
	bounce_inject(queue->store, queue->config, a->msg->id, content,
	    attempt_bounce_cb, a);
	a->bounce_inline = false;
}

/*
 * Sends the sender a delay warning when the next time of delay_warning
 * has come, for the recipients deferred in this attempt. As in Exim, the
 * times are checked only when an attempt defers.
 */
static void
attempt_send_warning(struct attempt *a)
{
	const struct config *config = a->msg->queue->config;
	struct spool_header *h = a->header;
	int64_t due = bounce_warning_due(&config->delay_warning,
	    h->warning_count);
	time_t now = clock_now();
	struct bounce_content content;

	if (due < 0 || now - h->received_time < due)
		return;
	if (bounce_compose_warning(config, h, &a->deferrals, due, now,
	    (uint32_t)random(), &content) == 0)
		return;
	/* The -H rewrite at the end of the attempt records the count. */
	h->warning_count++;
	a->changed = true;
	attempt_inject(a, &content);
	bounce_content_free(&content);
}

/*
 * Sends the "Action: relayed" notice for the recipients delivered with
 * NOTIFY=SUCCESS to servers that do not offer DSN. Where the server
 * offers DSN, NOTIFY went on with the recipient and that server reports.
 */
static void
attempt_send_relayed(struct attempt *a)
{
	const struct config *config = a->msg->queue->config;
	struct bounce_content content;

	if (bounce_compose_relayed(config, a->header, &a->relayed, clock_now(),
	    (uint32_t)random(), &content) == 0)
		return;
	attempt_inject(a, &content);
	bounce_content_free(&content);
}

/*
 * Sends the bounce for the attempt's failures; the attempt ends once it
 * is stored. The failures reach the disk only afterwards, with the -H
 * rewrite, so a crash loses no bounce.
 * NOTE: a crash after the bounce is stored and before the rewrite sends
 * the bounce again after the restart.
 */
static void
attempt_send_bounce(struct attempt *a)
{
	struct queue *queue = a->msg->queue;
	const struct config *config = queue->config;
	struct bounce_content content;
	size_t limit = bounce_body_limit(config, a->header);
	char *body = NULL;
	size_t body_len = 0;
	uint64_t body_size = 0;
	int rc;

	if (limit > 0 && bounce_read_body(a->data_fd, a->msg->id, limit, &body,
	    &body_len, &body_size) < 0)
		log_write(LOG_MAIN, a->msg->id, "cannot read the message body "
		    "for its bounce: %s; the bounce returns none",
		    strerror(errno));
	rc = bounce_compose(config, a->header, &a->failures, body, body_len,
	    body_size, clock_now(), (uint32_t)random(), &content);
	free(body);
	if (rc == 0)
		return;		/* NOTIFY excluded every failure */
	attempt_inject(a, &content);
	bounce_content_free(&content);
}

/*
 * Returns the delay until a frozen message is looked at again without an
 * operator: when a bounce reaches ignore_bounce_errors_after, or any
 * message timeout_frozen_after (both counted from arrival); 0 for never.
 */
static uint64_t
queue_frozen_recheck_usec(const struct config *config,
    const struct spool_header *h)
{
	bool bounce = h->sender == NULL || h->sender[0] == '\0';
	time_t now = clock_now();
	int64_t due = 0;

	if (bounce)
		due = h->received_time + config->ignore_bounce_errors_after;
	if (config->timeout_frozen_after > 0) {
		int64_t t = h->received_time + config->timeout_frozen_after;

		if (due == 0 || t < due)
			due = t;
	}
	if (due == 0)
		return 0;
	return due <= now ? 1000000 : (uint64_t)(due - now) * 1000000;
}

/*
 * Ends the freeze of a message frozen for too long. Past
 * timeout_frozen_after it is cancelled: attempt_prepare_end() fails its
 * recipients. A bounce past ignore_bounce_errors_after is tried once
 * more, and discarded if it fails again. Returns true when the attempt
 * goes on.
 */
static bool
attempt_thaw_expired(struct queue_msg *msg, struct attempt *a)
{
	const struct config *config = msg->queue->config;
	struct spool_header *h = a->header;
	int64_t age = clock_now() - h->received_time;
	bool bounce = h->sender == NULL || h->sender[0] == '\0';

	if (config->timeout_frozen_after > 0 &&
	    age >= config->timeout_frozen_after) {
		log_write(LOG_MAIN, msg->id, "cancelled by timeout_frozen_after");
		a->timed_out = true;
	} else if (bounce && age >= config->ignore_bounce_errors_after) {
		log_write(LOG_MAIN, msg->id, "Unfrozen by errmsg timer");
	} else {
		return false;
	}
	h->frozen = false;
	h->frozen_at = 0;
	a->changed = true;
	return true;
}

/*
 * Fails a message with more Received: fields than received_headers_max
 * (a mail loop), as Exim checks again before delivery: a local
 * submission has not been counted at reception. Returns true then.
 */
static bool
attempt_check_loop(struct attempt *a)
{
	const struct spool_header *h = a->header;
	int max = a->msg->queue->config->received_headers_max;
	int count = 0;

	for (size_t i = 0; i < h->fields_count; i++)
		if (h->fields[i].flag == SPOOL_FIELD_RECEIVED)
			count++;
	if (max <= 0 || count <= max)
		return false;
	a->fail_all = "Too many \"Received\" headers - suspected mail loop";
	return true;
}

/*
 * Runs once at the end of an attempt, before its outcome is recorded.
 * It schedules the next attempt of a deferred message, fails it past
 * its final retry cutoff, sends a delay warning or success notice when
 * one is due, and bounces or freezes its failures. Returns true when
 * the attempt must wait for one of those messages to be stored.
 */
static bool
attempt_prepare_end(struct attempt *a)
{
	struct queue_msg *msg = a->msg;
	const char *sender = a->header->sender;

	a->end_prepared = true;
	a->retry_delay = QUEUE_RETRY_INTERVAL_USEC;
	if (a->abandoned)
		return false;
	if (a->timed_out) {
		attempt_fail_undelivered(a, "delivery cancelled; message timed "
		    "out", false);
	} else if (a->fail_all != NULL) {
		attempt_fail_undelivered(a, a->fail_all, false);
	} else if (!a->header->frozen && attempt_undelivered(a) > 0) {
		attempt_load_retry(a);
		a->retry_delay = attempt_retry_delay(a);
		attempt_save_retry(a);
		if (msg->retry.expired)
			attempt_fail_undelivered(a, "retry timeout exceeded", true);
	}
	if (a->deferrals.count > 0 && !a->header->frozen &&
	    attempt_undelivered(a) > 0)
		attempt_send_warning(a);
	if (a->relayed.count > 0)
		attempt_send_relayed(a);
	if (a->failures.count > 0) {
		if (sender != NULL && sender[0] != '\0')
			attempt_send_bounce(a);
		else if (!a->timed_out)
			attempt_freeze_failed_bounce(a);
	}
	return a->journal_pending > 0;
}

/* Ends an attempt whose groups and journal writes have all finished. */
static void
attempt_end(struct attempt *a)
{
	struct queue_msg *msg = a->msg;
	struct queue *queue = msg->queue;
	bool complete, frozen;
	uint64_t retry_delay;

	if (!a->end_prepared && attempt_prepare_end(a))
		return;		/* runs again once the bounce is stored */
	complete = !a->abandoned && attempt_undelivered(a) == 0;
	/* Frozen during this attempt (an MX record pointing here, a failed
	 * bounce): no retry until an operator thaws it. Logged, as Exim
	 * does, before the -H file records it. */
	frozen = !complete && !a->abandoned && a->header->frozen;
	retry_delay = a->retry_delay;
	if (frozen)
		retry_delay = queue_frozen_recheck_usec(queue->config, a->header);
	if (frozen && !a->frozen_logged)
		log_write(LOG_MAIN, msg->id, "Frozen");

	if (complete) {
		log_line_completed(msg->id, attempt_queue_usec(a));
		queue->stats.completed++;
		msg->removing = true;
		spool_store_remove(queue->store, msg->id, queue_removed_cb, msg);
	} else if (a->changed && !a->abandoned) {
		size_t len;
		char *bytes = spool_header_format(a->header, &len);

		/* Fold the journal into -H, which removes -J. The -D lock is
		 * kept until the new -H is on disk, so no other process edits
		 * the message meanwhile. A header that cannot be formatted
		 * leaves -H and -J as they are, which loses nothing. */
		if (bytes == NULL) {
			log_write(LOG_MAIN | LOG_PANIC, msg->id,
			    "cannot format the -H file for a rewrite; the journal "
			    "keeps the delivery state");
		} else {
			spool_store_header_rewrite(queue->store, msg->id, bytes, len,
			    queue_rewrite_cb, msg);
			msg->rewrites++;
			if (msg->rewrite_lock_fd < 0) {
				msg->rewrite_lock_fd = a->data_fd;
				a->data_fd = -1;
			}
			free(bytes);
		}
	}

	if (!complete)
		queue_msg_learn(msg, a->header);
	msg->attempt = NULL;
	attempt_free(a);
	queue->stats.attempts_running--;
	queue_due_wake(queue);
	if (!complete && (!frozen || retry_delay > 0))
		queue_schedule(msg, retry_delay);
	/* For a completed message those waiting hear of it once its files
	 * are gone, so that a listing after "exim -M" no longer shows it. */
	if (!complete)
		queue_msg_attempt_ended(msg);
	queue_check_drained(queue);
}

static void
attempt_maybe_end(struct attempt *a)
{
	if (a->groups_running == 0 && a->journal_pending == 0)
		attempt_end(a);
}

/* ---- logging the outcome of a group ---- */

/* X= and CV= of a result; the strings are borrowed from it. */
static struct log_tls
result_log_tls(const struct smtp_result *r)
{
	struct log_tls tls = { .cipher = NULL };

	if (r == NULL || !r->tls)
		return tls;
	tls.cipher = r->tls_cipher;
	tls.cert = r->tls_cert == SMTP_CERT_VERIFIED ? LOG_CERT_VERIFIED :
	    r->tls_cert == SMTP_CERT_UNVERIFIED ? LOG_CERT_UNVERIFIED :
	    LOG_CERT_NONE;
	return tls;
}

static void group_log_failure(struct group *g, const char *address,
    const struct smtp_result *result, const char *message);

/* Fails address, whose deferral came after the final cutoff of its
 * retry rule: "**" with the deferral's reason and Exim's "retry timeout
 * exceeded". The -H rewrite at the end of the attempt records it. */
static void
group_fail_expired(struct group *g, const char *address,
    const struct smtp_result *result, int code, const char *message)
{
	struct attempt *a = g->attempt;
	char *text;

	if (message == NULL && code > 0)
		message = strerror(code);
	text = message != NULL ?
	    xasprintf("%s: retry timeout exceeded", message) :
	    xstrdup("retry timeout exceeded");
	group_log_failure(g, address, result, text);
	free(text);
	spool_header_mark_delivered(a->header, address);
	a->changed = true;
}

static void
group_log_defer(struct group *g, const char *address,
    const struct smtp_result *result, const struct smtp_rcpt_result *rcpt,
    int code, const char *message)
{
	struct log_defer defer = {
		.address = address,
		.router = group_router(g),
		.transport = result != NULL || code > 0 ||
		    code == QUEUE_ERRNO_HOST_RETRY ? LOG_TRANSPORT_REMOTE : NULL,
		.error_code = code,
		.message = message,
		.deliver_usec = result != NULL ?
		    (int64_t)result->duration_usec : -1,
	};

	const char *reason;

	if (!g->attempt->abandoned &&
	    attempt_defer_expires(g->attempt, address)) {
		group_fail_expired(g, address, result, code, message);
		return;
	}
	reason = message;
	if (reason == NULL && code > 0)
		reason = strerror(code);
	bounce_list_add(&g->attempt->deferrals, address,
	    attempt_recipient(g->attempt, address),
	    result != NULL ? result->host_name : NULL,
	    result != NULL ? result->ip : NULL, result_reply(result, address),
	    reason);
	/* A connection failure names no host, as in Exim's summary line. */
	if (result != NULL && rcpt != NULL && rcpt->kind == SMTP_ERROR_REPLY) {
		defer.host.name = result->host_name;
		defer.host.ip = result->ip;
		defer.host.port = result->port;
		defer.reused_connection = result->reused;
	}
	log_line_defer(g->attempt->msg->id, &defer);
	g->attempt->msg->queue->stats.deferred++;
}

static void
group_log_failure(struct group *g, const char *address,
    const struct smtp_result *result, const char *message)
{
	struct log_failure failure = {
		.address = address,
		.sender = g->attempt->header->sender != NULL ?
		    g->attempt->header->sender : "",
		.router = result != NULL ? group_router(g) : NULL,
		.transport = result != NULL ? LOG_TRANSPORT_REMOTE : NULL,
		.message = message,
		.deliver_usec = result != NULL ?
		    (int64_t)result->duration_usec : -1,
	};

	if (result != NULL) {
		failure.host.name = result->host_name;
		failure.host.ip = result->ip;
		failure.host.port = result->port;
		failure.reused_connection = result->reused;
		failure.tls = result_log_tls(result);
	}
	log_line_failure(g->attempt->msg->id, &failure);
	g->attempt->msg->queue->stats.failed++;
	bounce_list_add(&g->attempt->failures, address,
	    attempt_recipient(g->attempt, address),
	    result != NULL ? result->host_name : NULL,
	    result != NULL ? result->ip : NULL, result_reply(result, address),
	    message);
}

/* Logs the delivered and failed recipients of the last result, once
 * their journal lines are durable. */
static void
group_log_final(struct group *g)
{
	struct smtp_result *r = g->result;
	struct attempt *a = g->attempt;
	unsigned last_transaction = 0;
	size_t *order = r != NULL ? smtp_result_log_order(r) : NULL;

	for (size_t i = 0; r != NULL && i < r->rcpt_count; i++) {
		struct smtp_rcpt_result *rcpt = &r->rcpts[order[i]];

		if (rcpt->outcome == SMTP_DELIVERED) {
			/* "=>" starts each transaction, "->" goes on with it. */
			bool first = rcpt->transaction != last_transaction;
			struct log_delivery delivery = {
				.kind = first ? LOG_DELIVERY_FIRST : LOG_DELIVERY_MORE,
				.address = rcpt->address,
				.sender = a->header->sender != NULL ?
				    a->header->sender : "",
				.router = group_router(g),
				.transport = LOG_TRANSPORT_REMOTE,
				.host = { .name = r->host_name, .ip = r->ip,
				    .port = r->port },
				.reused_connection = r->reused,
				.tls = result_log_tls(r),
				.interface_ip = r->source_ip[0] != '\0' ?
				    r->source_ip : NULL,
				.confirmation = rcpt->reply,
				.queue_usec = attempt_queue_usec(a),
				.deliver_usec = (int64_t)r->duration_usec,
			};

			log_line_delivery(a->msg->id, &delivery);
			a->msg->queue->stats.delivered++;
			attempt_note_success(a, r, rcpt);
			last_transaction = rcpt->transaction;
		} else if (rcpt->outcome == SMTP_FAILED) {
			group_log_failure(g, rcpt->address, r, rcpt->message);
		}
	}
	free(order);
}

static void
group_journal_cb(void *arg, int result, const char *error)
{
	struct group *g = arg;
	struct attempt *a = g->attempt;

	if (result != 0)
		log_write(LOG_MAIN | LOG_PANIC, a->msg->id,
		    "cannot record a finished recipient in the journal: %s "
		    "(it may be delivered again)", error);
	a->journal_pending--;
	if (--g->journal_pending == 0) {
		group_log_final(g);
		g->done = true;
		a->groups_running--;
		attempt_maybe_end(a);
	}
}

/* Marks address done (delivered or failed for good) and appends it to
 * the -J journal; group_journal_cb() counts the write when it is
 * durable. */
static void
group_journal_done(struct group *g, const char *address)
{
	struct attempt *a = g->attempt;

	spool_header_mark_delivered(a->header, address);
	a->changed = true;
	g->journal_pending++;
	a->journal_pending++;
	spool_store_journal_append(a->msg->queue->store, a->msg->id, address,
	    group_journal_cb, g);
}

/*
 * Marks address failed for good in the header only, without a journal
 * line: the -H rewrite at the end of the attempt records it, after the
 * bounce for it is stored. A crash in between leaves the recipient to be
 * tried again, and bounced then, instead of losing its bounce.
 */
static void
group_fail_unjournaled(struct group *g, const char *address)
{
	spool_header_mark_delivered(g->attempt->header, address);
	g->attempt->changed = true;
}

/* Records every delivered recipient of the final result in the journal
 * and marks the failed ones; the log lines follow when the journal is
 * durable. */
static void
group_settle(struct group *g)
{
	struct smtp_result *r = g->result;

	/* The path is free for its next item; a message that reached the
	 * server counts against the path's daily cap. */
	sched_item_done(&g->item, r->delivered > 0 || r->failed > 0);

	for (size_t i = 0; i < r->rcpt_count; i++) {
		struct smtp_rcpt_result *rcpt = &r->rcpts[i];

		if (rcpt->outcome == SMTP_DEFERRED) {
			group_log_defer(g, rcpt->address, r, rcpt,
			    smtp_rcpt_defer_code(rcpt), rcpt->message);
			continue;
		}
		if (rcpt->outcome == SMTP_FAILED)
			group_fail_unjournaled(g, rcpt->address);
		else
			group_journal_done(g, rcpt->address);
	}
	if (g->journal_pending == 0) {
		group_log_final(g);	/* failures only */
		group_finish(g);
	}
}

/* Ends a group that has nothing left to record. */
static void
group_finish(struct group *g)
{
	struct attempt *a = g->attempt;

	g->done = true;
	a->groups_running--;
	attempt_maybe_end(a);
}

/* Defers or fails every recipient of the group without a host result. */
static void
group_end_without_host(struct group *g, bool permanent, int code,
    const char *message)
{
	sched_item_done(&g->item, false);
	for (size_t i = 0; i < g->rcpt_count; i++) {
		if (!permanent) {
			group_log_defer(g, g->rcpts[i], NULL, NULL, code, message);
			continue;
		}
		group_log_failure(g, g->rcpts[i], NULL, message);
		group_fail_unjournaled(g, g->rcpts[i]);
	}
	group_finish(g);
}

/* -N: logs every recipient with "*>" and marks it delivered, without
 * routing or connecting, as Exim's dont_deliver does. */
static void
group_pretend(struct group *g)
{
	struct attempt *a = g->attempt;

	for (size_t i = 0; i < g->rcpt_count; i++) {
		struct log_delivery delivery = {
			.kind = LOG_DELIVERY_SUPPRESSED,
			.address = g->rcpts[i],
			.sender = a->header->sender != NULL ?
			    a->header->sender : "",
			.router = group_router(g),
			.transport = LOG_TRANSPORT_REMOTE,
			.queue_usec = attempt_queue_usec(a),
			.deliver_usec = -1,
		};

		log_line_delivery(a->msg->id, &delivery);
		group_journal_done(g, g->rcpts[i]);
	}
	if (g->journal_pending == 0)
		group_finish(g);
}

/* ---- delivery over SMTP ---- */

/* The "5.7.1" that starts text, copied into out, or "". */
static void
reply_enhanced_code(const char *text, char *out, size_t size)
{
	size_t n = 0;
	int dots = 0;

	out[0] = '\0';
	if (text == NULL || (text[0] < '2' || text[0] > '5') || text[1] != '.')
		return;
	while (text[n] != '\0' && text[n] != ' ' && n + 1 < size) {
		if (text[n] == '.')
			dots++;
		else if (text[n] < '0' || text[n] > '9')
			return;
		n++;
	}
	if (dots != 2 || (text[n] != ' ' && text[n] != '\0'))
		return;
	memcpy(out, text, n);
	out[n] = '\0';
}

/* Passes the result of one host to the policy's delivery_result
 * handler. */
static void
group_report_result(struct group *g, const struct smtp_result *r)
{
	struct attempt *a = g->attempt;
	struct queue *queue = a->msg->queue;
	const struct smtp_rcpt_result *first = r->rcpt_count > 0 ?
	    &r->rcpts[0] : NULL;
	struct policy_state *ps = policy_current();
	const char *tenant, *campaign, *reply;
	char enhanced[16];

	if (ps == NULL || !policy_has_handler(ps, "delivery_result")) {
		policy_state_unref(ps);
		return;
	}
	tenant = spool_header_get_acl(a->header, SPOOL_ACL_TENANT);
	campaign = spool_header_get_acl(a->header, SPOOL_ACL_CAMPAIGN);
	reply = first == NULL ? "" : first->reply != NULL ? first->reply :
	    first->message != NULL ? first->message : strerror(first->error);
	/* After "550 " or "550-". */
	reply_enhanced_code(strlen(reply) > 4 && first->code > 0 ? reply + 4 :
	    NULL, enhanced, sizeof(enhanced));
	{
		struct policy_delivery_result res = {
			.msgid = a->msg->id,
			.outcome = r->delivered > 0 ? "delivered" :
			    r->failed > 0 ? "failed" : "deferred",
			.source_name = g->path != NULL ?
			    sched_path_source_name(g->path) : "",
			.source_ip = r->source_ip,
			.site = g->site,
			.pool = g->pool,
			.domain = g->domain,
			.host = r->host_name != NULL ? r->host_name : "",
			.host_ip = r->ip,
			.code = first != NULL ? first->code : 0,
			.enhanced_code = enhanced,
			.reply = reply,
			.class_name = scheduler_class_name(queue->sched,
			    a->msg->class_index),
			.tenant = tenant != NULL ? tenant : "",
			.campaign = campaign != NULL ? campaign : "",
			.queue_time = (double)attempt_queue_usec(a) / 1e6,
			.recipients = (unsigned)r->rcpt_count,
		};

		policy_delivery_result(ps, &res);
	}
	policy_state_unref(ps);
}

/* True when the result decides nothing about the recipients themselves, so
 * the next host should be tried: the connection failed, or the server
 * deferred before any RCPT. */
static bool
result_is_host_failure(const struct smtp_result *r)
{
	const struct smtp_rcpt_result *first;

	if (r->rcpt_count == 0 || r->delivered > 0 || r->failed > 0)
		return false;
	first = &r->rcpts[0];
	return first->phase < SMTP_PHASE_RCPT;
}

/* ---- host-level retry ---- */

/*
 * True if host h of the group is before its retry time, so this attempt
 * skips it, as Exim skips a host whose "T:" retry record is not due.
 * An operator's attempt (queue_force(): -M, -q..., -R) tries it anyway.
 * NOTE: Exim's plain -q run honours host retry times; here it does not.
 */
static bool
group_host_waiting(struct group *g, const struct route_host *h)
{
	struct queue *queue = g->attempt->msg->queue;
	char key[RETRY_HOSTS_KEY_SIZE];
	time_t next_try;

	if (g->attempt->forced)
		return false;
	retry_hosts_key(key, h->name, h->ip, h->port);
	if (!retry_hosts_waiting(queue->retry_hosts, key, clock_now(),
	    &next_try))
		return false;
	g->hosts_waiting++;
	return true;
}

/* Defers the group, every host of which is before its retry time. */
static void
group_end_hosts_waiting(struct group *g)
{
	char *message = xasprintf("retry time not reached for any host for "
	    "'%s'", g->domain);

	group_end_without_host(g, false, QUEUE_ERRNO_HOST_RETRY, message);
	free(message);
}

/*
 * Records what the host of result did, for the host-level retry times.
 * A connection that was refused, timed out, closed or answered with an
 * error before MAIL is a failure of the host: its next retry time comes
 * from the first retry rule for the host name (then the mail domain).
 * Any reply from MAIL on clears its failures.
 */
static void
group_note_host(struct group *g, const struct smtp_result *r)
{
	struct queue *queue = g->attempt->msg->queue;
	const char *sender = g->attempt->header->sender;
	const struct smtp_rcpt_result *first;
	char key[RETRY_HOSTS_KEY_SIZE];
	struct retry_error failure;
	const struct retry_rule *rule;

	/* A stale reused connection failed before the host could act. */
	if (r->rcpt_count == 0 || r->stale || g->attempt->abandoned)
		return;
	first = &r->rcpts[0];
	retry_hosts_key(key, r->host_name, r->ip, r->port);
	if (first->kind == SMTP_ERROR_NONE || first->phase >= SMTP_PHASE_MAIL) {
		retry_hosts_succeeded(queue->retry_hosts, key);
		return;
	}
	if (first->kind == SMTP_ERROR_LOCAL)
		return;
	memset(&failure, 0, sizeof(failure));
	rcpt_retry_error(first, &failure);
	rule = retry_rules_find(&queue->retry_rules, r->host_name, g->domain,
	    &failure, sender != NULL ? sender : "");
	retry_hosts_failed(queue->retry_hosts, key, rule, clock_now(),
	    QUEUE_RETRY_INTERVAL_USEC, first->kind == SMTP_ERROR_REPLY ?
	    -first->code : first->error, first->message != NULL ?
	    first->message : strerror(first->error));
}

static void
group_smtp_cb(void *arg, struct smtp_result *result)
{
	struct group *g = arg;

	g->request = NULL;
	smtp_result_free(g->result);
	g->result = result;
	group_note_host(g, result);
	group_report_result(g, result);
	/* A path the policy suspended on this result tries no other host:
	 * the group waits with the rest of the path's mail. */
	if (result_is_host_failure(result) && !g->attempt->abandoned &&
	    g->host_index < g->host_count &&
	    !sched_path_suspended(g->path, clock_now())) {
		/* As Exim, name each host that failed before the next. */
		log_write(LOG_MAIN, g->attempt->msg->id, "H=%s [%s] %s",
		    result->host_name, result->ip,
		    result->rcpts[0].message != NULL ? result->rcpts[0].message :
		    strerror(result->rcpts[0].error));
		group_next_host(g);
		return;
	}
	group_settle(g);
}

static void
group_next_host(struct group *g)
{
	struct attempt *a = g->attempt;
	struct queue *queue = a->msg->queue;

	while (g->host_index < g->host_count) {
		struct route_host *h = &g->hosts[g->host_index++];
		const char *source_ip = sched_path_source_ip(g->path);
		/* Without a source the system picks the address. */
		struct smtp_pool_path path = {
			.host_name = h->name,
			.ip = h->ip,
			.port = h->port,
			.source_ip = source_ip[0] != '\0' ? source_ip : NULL,
			.helo_name = sched_path_helo(g->path),
			.max_messages = sched_path_max_messages(g->path),
			/* Idle connections count against the path's cap too,
			 * whatever host of the site they went to. */
			.group = sched_path_key(g->path),
			.group_max = sched_path_max_connections(g->path),
		};
		struct smtp_client_message message = {
			.header = a->header,
			.data_fd = a->data_fd,
			.recipients = g->rcpts,
			.recipient_count = g->rcpt_count,
			.dsn = g->dsn,
			.max_rcpt = sched_path_max_recipients(g->path),
		};
		char *error = NULL;

		if (group_host_waiting(g, h))
			continue;
		g->request = smtp_pool_deliver(queue->pool, &path, &message,
		    group_smtp_cb, g, &error);
		if (g->request != NULL)
			return;
		log_write(LOG_MAIN | LOG_PANIC, a->msg->id,
		    "cannot deliver to %s [%s]: %s", h->name, h->ip, error);
		free(error);
	}

	/* Every host failed at connection level: the last result speaks
	 * for the group, or, with no result, the attempt could not start. */
	if (g->result != NULL)
		group_settle(g);
	else if (g->hosts_waiting > 0)
		group_end_hosts_waiting(g);
	else
		group_end_without_host(g, false, -1,
		    "no host could be tried");
}

/* ---- routing ---- */

static void
group_add_host(struct group *g, const char *name, const char *ip, int port)
{
	struct route_host *h;

	if (g->host_count >= QUEUE_ADDRESSES_MAX)
		return;
	g->hosts = xreallocarray(g->hosts, g->host_count + 1, sizeof(*g->hosts));
	h = &g->hosts[g->host_count++];
	h->name = xstrdup(name);
	strlcpy_s(h->ip, ip, sizeof(h->ip));
	h->port = port;
}

static void
group_add_dns_hosts(struct group *g, const struct dns_result *result,
    int port)
{
	for (size_t i = 0; i < result->host_count; i++) {
		const struct dns_host *host = &result->hosts[i];

		for (size_t j = 0; j < host->address_count; j++)
			group_add_host(g, host->name, host->addresses[j].text, port);
	}
}

static void group_route_smarthost(struct group *g);
static void group_enqueue(struct group *g);
static void group_reroute(void *arg);

/*
 * Asks the policy's route handler where the group goes, given the MX
 * hosts already resolved (result, NULL with a smarthost), then resolves
 * the route's own hosts, if it named any, and queues the group on its
 * path. A failed handler defers the group.
 */
static void
group_route(struct group *g, struct dns_result *result)
{
	struct attempt *a = g->attempt;
	struct queue *queue = a->msg->queue;
	const char *tenant = spool_header_get_acl(a->header, SPOOL_ACL_TENANT);
	const char *campaign = spool_header_get_acl(a->header,
	    SPOOL_ACL_CAMPAIGN);
	struct policy_route_in in = {
		.msgid = a->msg->id,
		.sender = a->header->sender != NULL ? a->header->sender : "",
		.domain = g->domain,
		.tenant = tenant != NULL ? tenant : "",
		.campaign = campaign != NULL ? campaign : "",
	};
	struct policy_route_out out;

	if (scheduler_route(queue->sched, &in, a->msg->class_index, result,
	    &out) == POLICY_QUEUE_FAILED) {
		group_end_without_host(g, false, -1,
		    "the policy's route handler failed");
		return;
	}
	strlcpy_s(g->site, out.site, sizeof(g->site));
	strlcpy_s(g->pool, out.pool, sizeof(g->pool));
	strlcpy_s(g->route, out.route, sizeof(g->route));
	g->port = out.port;
	if (out.host_count > 0) {
		g->explicit_hosts = xcalloc(out.host_count,
		    sizeof(*g->explicit_hosts));
		for (size_t k = 0; k < out.host_count; k++)
			g->explicit_hosts[g->explicit_count++] =
			    xstrdup(out.hosts[k]);
	}
	if (g->explicit_count > 0 || result == NULL) {
		group_route_smarthost(g);
		return;
	}
	group_add_dns_hosts(g, result, g->port > 0 ? g->port :
	    queue->config->delivery_port);
	group_enqueue(g);
}

static void
group_go(void *arg)
{
	group_next_host(arg);
}

/* Chooses the group's path and waits there for its turn. */
static void
group_enqueue(struct group *g)
{
	struct attempt *a = g->attempt;
	struct queue *queue = a->msg->queue;
	char *error = NULL;

	g->path = scheduler_choose(queue->sched, a->msg->id, g->site, g->pool,
	    a->msg->class_index, g->domain, &error);
	if (g->path == NULL) {
		log_write(LOG_MAIN | LOG_PANIC, a->msg->id, "%s: %s", g->domain,
		    error);
		group_end_without_host(g, false, -1, error);
		free(error);
		return;
	}
	sched_item_submit(g->path, &g->item, a->msg->class_index, group_go, g);
	if (!g->rerouted)
		g->item.reroute = group_reroute;
}

/* Its path was suspended: another source, once. */
static void
group_reroute(void *arg)
{
	struct group *g = arg;

	g->rerouted = true;
	group_enqueue(g);
}

struct smarthost_lookup {
	struct group *group;
	int port;
};

static void
group_smarthost_cb(void *arg, struct dns_result *result)
{
	struct smarthost_lookup *lookup = arg;
	struct group *g = lookup->group;

	g->lookup = NULL;
	g->smarthost_lookup = NULL;
	if (result->status == DNS_OK)
		group_add_dns_hosts(g, result, lookup->port);
	else
		log_write(LOG_MAIN, g->attempt->msg->id,
		    "smarthost %s: %s", result->domain,
		    result->error != NULL ? result->error :
		    dns_status_name(result->status));
	dns_result_free(result);
	free(lookup);
	group_route_smarthost(g);
}

/* Resolves the smarthost items one after the other, then delivers. */
static void
group_route_smarthost(struct group *g)
{
	struct queue *queue = g->attempt->msg->queue;
	struct config_list_iter iter;
	char item[QUEUE_HOST_ITEM_MAX], name[QUEUE_HOST_ITEM_MAX];
	size_t index = 0;
	int port;

	config_list_init(&iter, queue->config->smarthost);
	for (;;) {
		struct smarthost_lookup *lookup;
		char *error = NULL;

		/* The route's own hosts, else the smarthost option's. */
		if (g->explicit_count > 0) {
			if (index >= g->explicit_count)
				break;
			strlcpy_s(item, g->explicit_hosts[index], sizeof(item));
		} else if (config_list_next(&iter, item, sizeof(item)) == NULL) {
			break;
		}
		if (index++ < g->smarthost_index)
			continue;
		g->smarthost_index = index;
		if (index > QUEUE_SMARTHOSTS_MAX ||
		    host_item_split(item, g->port > 0 ? g->port :
		    queue->config->delivery_port, name, sizeof(name),
		    &port) < 0) {
			log_write(LOG_MAIN | LOG_PANIC, g->attempt->msg->id,
			    "invalid smarthost item \"%s\" (expected host, "
			    "host::port or [ip]:port; at most %d items)", item,
			    QUEUE_SMARTHOSTS_MAX);
			continue;
		}
		if (host_is_ip_literal(name)) {
			group_add_host(g, name, name, port);
			continue;
		}
		lookup = xcalloc(1, sizeof(*lookup));
		lookup->group = g;
		lookup->port = port;
		g->lookup = dns_lookup_host(queue->resolver, name,
		    group_smarthost_cb, lookup, &error);
		if (g->lookup != NULL) {
			g->smarthost_lookup = lookup;
			return;
		}
		log_write(LOG_MAIN | LOG_PANIC, g->attempt->msg->id,
		    "smarthost %s: %s", name, error);
		free(error);
		free(lookup);
	}

	if (g->host_count == 0)
		group_end_without_host(g, false, -1, g->explicit_count > 0 ?
		    "no address could be found for the route's hosts" :
		    "no smarthost address could be found");
	else
		group_enqueue(g);
}

/* Defers the group and freezes the message, because the most preferred
 * MX host of the domain (or the domain itself, without MX) is this
 * host: delivering would loop. Exim's wording for both cases. */
static void
group_freeze_self(struct group *g, const struct dns_result *result)
{
	struct attempt *a = g->attempt;
	const char *reason = result->implicit_mx ?
	    "remote host address is the local host" :
	    "lowest numbered MX record points to local host";

	log_write(LOG_MAIN, a->msg->id, "%s: %s", reason, result->domain);
	a->header->frozen = true;
	a->header->frozen_at = clock_now();
	a->changed = true;
	group_end_without_host(g, false, -1, reason);
}

static void
group_mx_cb(void *arg, struct dns_result *result)
{
	struct group *g = arg;

	g->lookup = NULL;
	switch (result->status) {
	case DNS_OK:
		/* RFC 5321 section 5.1: drop the MX hosts not preferred to
		 * this one; with none left, freeze as Exim's self = freeze. */
		if (dns_result_remove_local(result, smtp_pool_is_local,
		    g->attempt->msg->queue->pool) == DNS_SELF_LOWEST) {
			group_freeze_self(g, result);
			break;
		}
		group_route(g, result);
		break;
	case DNS_NOT_FOUND:
	case DNS_NO_DATA:
		group_end_without_host(g, true, 0, "Unrouteable address");
		break;
	case DNS_NO_MAIL:
		group_end_without_host(g, true, 0,
		    "Domain does not accept mail (null MX)");
		break;
	case DNS_TEMPFAIL:
		group_end_without_host(g, false, -1,
		    "host lookup did not complete");
		break;
	}
	dns_result_free(result);
}

static void
group_start(struct group *g)
{
	struct queue *queue = g->attempt->msg->queue;
	char *error = NULL;

	if (queue->config->smarthost != NULL &&
	    queue->config->smarthost[0] != '\0') {
		group_route(g, NULL);
		return;
	}
	g->lookup = dns_lookup_mx(queue->resolver, g->domain, group_mx_cb, g,
	    &error);
	if (g->lookup == NULL) {
		group_end_without_host(g, true, 0, "Unrouteable address");
		free(error);
	}
}

/* ---- attempts ---- */

/* Groups the undelivered recipients by domain, compared without case. */
static void
attempt_make_groups(struct attempt *a)
{
	struct spool_header *h = a->header;

	for (size_t i = 0; i < h->recipients_count; i++) {
		const char *address = h->recipients[i].address;
		const char *at = strrchr(address, '@');
		const char *domain = at != NULL ? at + 1 : "";
		struct group *g = NULL;

		if (spool_header_is_delivered(h, address))
			continue;
		for (size_t j = 0; j < a->group_count; j++)
			if (strcasecmp(a->groups[j].domain, domain) == 0)
				g = &a->groups[j];
		if (g == NULL) {
			a->groups = xreallocarray(a->groups, a->group_count + 1,
			    sizeof(*a->groups));
			g = &a->groups[a->group_count++];
			memset(g, 0, sizeof(*g));
			g->domain = xstrdup(domain);
		}
		g->rcpts = xreallocarray(g->rcpts, g->rcpt_count + 1,
		    sizeof(*g->rcpts));
		g->dsn = xreallocarray(g->dsn, g->rcpt_count + 1,
		    sizeof(*g->dsn));
		g->dsn[g->rcpt_count] = &h->recipients[i];
		g->rcpts[g->rcpt_count++] = address;
	}
	/* The array is final now, so the back pointers stay valid. */
	for (size_t j = 0; j < a->group_count; j++)
		a->groups[j].attempt = a;
}

/* Adds the header fields of the message's class, once, before its
 * first delivery; the -H rewrite at the end of the attempt keeps them. */
static void
attempt_add_class_headers(struct attempt *a)
{
	const struct scheduler *sched = a->msg->queue->sched;
	size_t index = a->msg->class_index;

	for (size_t i = 0; i < scheduler_class_header_count(sched, index); i++) {
		const struct policy_class_header *h =
		    scheduler_class_header(sched, index, i);
		char *field = xasprintf("%s: %s\n", h->name, h->value);

		spool_header_add_field(a->header, spool_field_flag_for_name(
		    h->name, strlen(h->name)), field, strlen(field));
		free(field);
	}
}

static void
attempt_start(struct queue_msg *msg)
{
	struct queue *queue = msg->queue;
	struct attempt *a;
	char *error = NULL;
	int rc;

	if (queue->stopping || msg->attempt != NULL || msg->removing ||
	    msg->holds > 0)
		return;
	queue_due_remove(msg);
	if (msg->rewrites > 0) {
		/* This process still holds the -D lock for the rewrite. */
		msg->start_after_rewrite = true;
		return;
	}
	a = xcalloc(1, sizeof(*a));
	a->msg = msg;
	a->data_fd = -1;
	a->forced = msg->force != 0;

	rc = spool_store_lock(queue->store, msg->id, &a->data_fd, &error);
	if (rc == SPOOL_LOCK_BUSY) {
		log_write(LOG_MAIN, msg->id, "Spool file for %s is locked "
		    "(another process is handling this message)", msg->id);
		free(a);
		queue_schedule(msg, QUEUE_RETRY_INTERVAL_USEC);
		return;
	}
	if (rc != 0 || spool_store_read_header(queue->store, msg->id,
	    &a->header, &error) != 0) {
		/* Gone (removed by an operator) or unreadable: it leaves the
		 * queue; the start-up scan moves an unreadable one aside. */
		log_write(LOG_MAIN | LOG_PANIC, msg->id,
		    "cannot start delivery: %s", error);
		free(error);
		if (a->data_fd >= 0)
			close(a->data_fd);
		free(a);
		queue_msg_free(msg);
		return;
	}
	if (!attempt_pass_frozen(msg, a)) {
		attempt_free(a);	/* releases the lock */
		return;
	}

	/* As Exim does, the first attempt, even a deferred one, clears the
	 * first-delivery flag (exim -qi and $first_delivery read it). */
	queue_msg_learn(msg, a->header);
	if (a->header->deliver_firsttime) {
		a->header->deliver_firsttime = false;
		a->changed = true;
		attempt_add_class_headers(a);
	}

	msg->attempt = a;
	queue->stats.attempts_running++;
	/* A cancelled or looping message is only failed. */
	if (!a->timed_out && !attempt_check_loop(a))
		attempt_make_groups(a);
	a->groups_running = a->group_count;
	/* A daemon started with -N marks each message, so that it stays
	 * undelivered for any later process too, as Exim's -N flag does. */
	if (queue->dont_deliver && !a->header->dont_deliver) {
		a->header->dont_deliver = true;
		a->changed = true;
	}
	for (size_t i = 0; i < a->group_count; i++)
		if (a->header->dont_deliver)
			group_pretend(&a->groups[i]);
		else
			group_start(&a->groups[i]);
	attempt_maybe_end(a);
}

/* ---- shutdown ---- */

static void queue_end_finished_attempts(struct queue *queue);

/* Takes back, at shutdown, the groups still waiting on an egress path:
 * nothing of them has started, so they stay queued at once instead of
 * holding the drain. */
static void
queue_withdraw_ready(struct queue *queue)
{
	for (struct queue_msg *m = queue->messages; m != NULL; m = m->next) {
		struct attempt *a = m->attempt;

		for (size_t i = 0; a != NULL && i < a->group_count; i++) {
			struct group *g = &a->groups[i];

			if (g->done || g->item.state != SCHED_ITEM_READY)
				continue;
			sched_item_done(&g->item, false);
			g->done = true;
			a->groups_running--;
		}
	}
	queue_end_finished_attempts(queue);
}

static void
queue_abandon_attempts(void *arg)
{
	struct queue *queue = arg;

	for (struct queue_msg *m = queue->messages; m != NULL; m = m->next) {
		struct attempt *a = m->attempt;

		if (a == NULL)
			continue;
		a->abandoned = true;
		log_write(LOG_MAIN, m->id, "delivery abandoned at daemon shutdown: "
		    "undelivered recipients stay queued");
		for (size_t i = 0; i < a->group_count; i++) {
			struct group *g = &a->groups[i];

			if (g->done || g->journal_pending > 0)
				continue;
			if (g->lookup != NULL) {
				dns_lookup_cancel(g->lookup);
				g->lookup = NULL;
				free(g->smarthost_lookup);
				g->smarthost_lookup = NULL;
			}
			if (g->request != NULL) {
				smtp_pool_cancel(g->request);
				g->request = NULL;
			}
			sched_item_done(&g->item, false);
			g->done = true;
			a->groups_running--;
		}
	}
	queue_end_finished_attempts(queue);
}

/* Ends the attempts whose groups and journal writes have all finished. */
static void
queue_end_finished_attempts(struct queue *queue)
{
	/* Ending an attempt may free its message, so restart the walk each
	 * time one ends. */
	for (bool again = true; again;) {
		again = false;
		for (struct queue_msg *m = queue->messages; m != NULL; m = m->next) {
			if (m->attempt != NULL && m->attempt->groups_running == 0 &&
			    m->attempt->journal_pending == 0) {
				attempt_end(m->attempt);
				again = true;
				break;
			}
		}
	}
}

void
queue_shutdown(struct queue *queue, queue_done_fn done, void *arg)
{
	queue->stopping = true;
	smtp_pool_shutdown(queue->pool);
	queue->done = done;
	queue->done_arg = arg;
	for (struct queue_msg *m = queue->messages; m != NULL; m = m->next)
		clock_timer_cancel(m->timer);
	queue_withdraw_ready(queue);
	if (queue->stats.attempts_running == 0) {
		queue_check_drained(queue);
		return;
	}
	queue->drain_timer = clock_timer_new(queue->base,
	    queue_abandon_attempts, queue);
	clock_timer_arm(queue->drain_timer, QUEUE_DRAIN_TIMEOUT_USEC);
}

/* ---- operators: forced attempts and actions on one message ---- */

struct queue_waiter {
	queue_attempt_fn done;		/* waiters of an attempt */
	queue_hold_fn hold_done;	/* waiters of a hold */
	void *arg;
	struct queue_waiter *next;
};

/*
 * Decides whether an attempt goes on with a frozen message: when it
 * was forced with QUEUE_FORCE_THAW, which unfreezes it for good, as
 * Exim's -M and -qff do, or when it has been frozen too long
 * (attempt_thaw_expired()). A skipped message gets a timer only for
 * that deadline; thawing or forcing it brings it back sooner.
 */
static bool
attempt_pass_frozen(struct queue_msg *msg, struct attempt *a)
{
	uint64_t recheck;

	if (!a->header->frozen)
		return true;
	if ((msg->force & QUEUE_FORCE_THAW) == 0) {
		if (attempt_thaw_expired(msg, a))
			return true;
		log_line_message_event(msg->id, LOG_EVENT_SKIPPED_FROZEN, NULL,
		    NULL);
		recheck = queue_frozen_recheck_usec(msg->queue->config, a->header);
		if (recheck > 0)
			queue_schedule(msg, recheck);
		return false;
	}
	a->header->frozen = false;
	a->header->frozen_at = 0;
	a->changed = true;
	log_line_message_event(msg->id, LOG_EVENT_FORCED_THAW, NULL, NULL);
	return true;
}

/* Calls every waiter of msg's attempt, now that it has ended. */
static void
queue_msg_attempt_ended(struct queue_msg *msg)
{
	msg->attempts_ended++;
	queue_msg_notify(msg, true);
}

/* Notifies and frees the waiters for an attempt of msg. */
static void
queue_msg_notify(struct queue_msg *msg, bool attempted)
{
	struct queue_waiter *w = msg->waiters;

	msg->waiters = NULL;
	while (w != NULL) {
		struct queue_waiter *next = w->next;

		w->done(w->arg, msg->id, attempted);
		free(w);
		w = next;
	}
}

void
queue_force(struct queue *queue, const char *id, unsigned flags,
    queue_attempt_fn done, void *arg)
{
	struct queue_msg *msg = queue_find(queue, id);
	uint64_t ended;

	if (queue->stopping) {
		done(arg, id, false);
		return;
	}
	if (msg == NULL) {
		/* Not queued yet: add it without its usual first attempt,
		 * which the forced one replaces. */
		queue_add(queue, id);
		if ((msg = queue_find(queue, id)) == NULL)
			fatal_bug("message %s vanished from the queue", id);
		clock_timer_cancel(msg->timer);
	}

	ended = msg->attempts_ended;
	if (msg->attempt == NULL) {
		msg->force = flags | QUEUE_FORCED;
		attempt_start(msg);	/* may free msg */
		if ((msg = queue_find(queue, id)) != NULL &&
		    !msg->start_after_rewrite)
			msg->force = 0;
	}
	if (msg != NULL && (msg->attempt != NULL || msg->start_after_rewrite)) {
		/* Running, or starting once the last -H rewrite is on disk. */
		struct queue_waiter *w = xcalloc(1, sizeof(*w));

		w->done = done;
		w->arg = arg;
		w->next = msg->waiters;
		msg->waiters = w;
		return;
	}
	/* Ended at once, or not started: locked, frozen, gone or held. */
	done(arg, id, msg != NULL && msg->attempts_ended > ended);
}

bool
queue_is_waiting(struct queue *queue, const char *id)
{
	struct queue_msg *msg = queue_find(queue, id);

	return msg != NULL && (msg->attempt != NULL || msg->removing ||
	    msg->holds > 0 || clock_timer_pending(msg->timer));
}

void
queue_hold(struct queue *queue, const char *id, queue_hold_fn done,
    void *arg)
{
	struct queue_msg *msg = queue_find(queue, id);
	struct queue_waiter *w;

	if (msg == NULL) {
		done(arg, 0);
		return;
	}
	if (msg->attempt != NULL || msg->removing) {
		done(arg, QUEUE_BUSY);
		return;
	}
	msg->holds++;
	if (msg->rewrites == 0) {
		done(arg, 0);
		return;
	}
	/* The last attempt's -H rewrite is still queued: the action must
	 * read what it writes. */
	w = xcalloc(1, sizeof(*w));
	w->hold_done = done;
	w->arg = arg;
	w->next = msg->hold_waiters;
	msg->hold_waiters = w;
}

/* Counts a finished -H rewrite, and lets the actions waiting for the
 * last one go on. */
static void
queue_msg_rewritten(struct queue_msg *msg)
{
	struct queue_waiter *w;

	if (msg->rewrites > 0)
		msg->rewrites--;
	if (msg->rewrites > 0)
		return;
	if (msg->rewrite_lock_fd >= 0) {
		close(msg->rewrite_lock_fd);	/* releases the -D lock */
		msg->rewrite_lock_fd = -1;
	}
	if (msg->start_after_rewrite) {
		msg->start_after_rewrite = false;
		queue_schedule(msg, 0);
	}
	w = msg->hold_waiters;
	msg->hold_waiters = NULL;
	while (w != NULL) {
		struct queue_waiter *next = w->next;

		w->hold_done(w->arg, 0);
		free(w);
		w = next;
	}
}

void
queue_release(struct queue *queue, const char *id, unsigned how)
{
	struct queue_msg *msg = queue_find(queue, id);

	if (msg == NULL) {
		/* A message the queue did not know, such as one whose first
		 * attempt found it gone: thawing it makes it a candidate. */
		if ((how & QUEUE_RELEASE_ATTEMPT) != 0 && !queue->stopping)
			queue_add(queue, id);
		return;
	}
	if (msg->holds > 0)
		msg->holds--;
	if (msg->holds > 0 || msg->attempt != NULL || msg->removing)
		return;
	if ((how & QUEUE_RELEASE_REMOVED) != 0) {
		queue_msg_free(msg);
		return;
	}
	/* A timer that fired during the hold started nothing. */
	if ((how & QUEUE_RELEASE_ATTEMPT) != 0 ||
	    !clock_timer_pending(msg->timer))
		queue_schedule(msg, 0);
}
