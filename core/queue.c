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
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "clock.h"
#include "dns.h"
#include "log.h"
#include "log_line.h"
#include "queue.h"
#include "retry.h"
#include "smtp_client.h"
#include "smtp_pool.h"
#include "spool_header.h"
#include "spool_store.h"
#include "util.h"

#define QUEUE_SMARTHOSTS_MAX	16
#define QUEUE_HOST_ITEM_MAX	512
/* Addresses tried per group in one attempt, over all hosts. */
#define QUEUE_ADDRESSES_MAX	64

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
	size_t journal_pending;
	bool done;
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
};

struct queue_msg {
	struct queue *queue;
	char id[MSGID_SIZE];
	struct clock_timer *timer;
	struct attempt *attempt;	/* while one runs */
	bool removing;
	unsigned force;			/* QUEUE_FORCE_* while starting one */
	unsigned holds;			/* operators' actions running */
	uint64_t attempts_ended;
	struct queue_waiter *waiters;	/* told when the attempt ends */
	unsigned rewrites;		/* -H rewrites not yet on disk */
	int rewrite_lock_fd;		/* -D, locked until they are, or -1 */
	bool start_after_rewrite;	/* an attempt waits for them */
	struct queue_waiter *hold_waiters;	/* for the rewrites */
	struct retry_state retry;	/* of its deferrals while queued */
	struct queue_msg *prev, *next;
};

struct queue {
	struct event_base *base;
	const struct config *config;
	struct spool_store *store;
	struct dns_resolver *resolver;
	struct smtp_pool *pool;		/* outbound connections */
	struct retry_rules retry_rules;	/* "begin retry", parsed */
	struct queue_msg *messages;
	struct queue_stats stats;
	bool stopping;
	queue_done_fn done;
	void *done_arg;
	struct clock_timer *drain_timer;
};

static void attempt_start(struct queue_msg *msg);
static void group_next_host(struct group *g);
static void group_finish(struct group *g);
static void attempt_maybe_end(struct attempt *a);
static bool attempt_pass_frozen(struct queue_msg *msg, struct attempt *a);
static void queue_msg_attempt_ended(struct queue_msg *msg);
static void queue_msg_rewritten(struct queue_msg *msg);

static const char *
group_router(const struct group *g)
{
	const char *smarthost = g->attempt->msg->queue->config->smarthost;

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

static struct queue_msg *
queue_find(struct queue *queue, const char *id)
{
	for (struct queue_msg *m = queue->messages; m != NULL; m = m->next)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

static void
queue_msg_free(struct queue_msg *msg)
{
	struct queue *queue = msg->queue;

	if (msg->prev != NULL)
		msg->prev->next = msg->next;
	else
		queue->messages = msg->next;
	if (msg->next != NULL)
		msg->next->prev = msg->prev;
	if (msg->rewrite_lock_fd >= 0)
		close(msg->rewrite_lock_fd);
	clock_timer_free(msg->timer);
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
	if (retry_rules_parse(config, &queue->retry_rules, &error) < 0) {
		/* sluice -brt reports the same error with its file and line. */
		log_write(LOG_MAIN | LOG_PANIC, NULL, "retry rules ignored, "
		    "deferred messages are retried every 15 minutes: %s", error);
		free(error);
	}
	return queue;
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
	clock_timer_free(queue->drain_timer);
	smtp_pool_free(queue->pool);
	retry_rules_free(&queue->retry_rules);
	free(queue);
}

void
queue_add(struct queue *queue, const char *id)
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
	queue->stats.messages++;
	queue_schedule(msg, 0);
}

void
queue_stats(const struct queue *queue, struct queue_stats *out)
{
	*out = queue->stats;
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
	if (rcpt == NULL)
		return;

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
	time_t now = clock_now();

	for (size_t i = 0; i < a->header->recipients_count; i++) {
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

	/* NOTE: a message past its final cutoff keeps being retried, at
	 * retry_interval_max, because bounces do not exist yet. */
	retry_state_update(&msg->retry, rule, now, RETRY_INTERVAL_MAX_DEFAULT,
	    (uint32_t)random());
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
		smtp_result_free(g->result);
	}
	free(a->groups);
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

/* Ends an attempt whose groups and journal writes have all finished. */
static void
attempt_end(struct attempt *a)
{
	struct queue_msg *msg = a->msg;
	struct queue *queue = msg->queue;
	bool complete = !a->abandoned && attempt_undelivered(a) == 0;
	/* Frozen during this attempt (an MX record pointing here): no
	 * retry until an operator thaws it. Logged, as Exim does, before
	 * the -H file records it. */
	bool frozen = !complete && !a->abandoned && a->header->frozen;
	uint64_t retry_delay = QUEUE_RETRY_INTERVAL_USEC;

	if (!complete && !frozen && !a->abandoned)
		retry_delay = attempt_retry_delay(a);
	if (frozen)
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

	msg->attempt = NULL;
	attempt_free(a);
	queue->stats.attempts_running--;
	if (!complete && !frozen)
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

static void
group_log_defer(struct group *g, const char *address,
    const struct smtp_result *result, const struct smtp_rcpt_result *rcpt,
    int code, const char *message)
{
	struct log_defer defer = {
		.address = address,
		.router = group_router(g),
		.transport = result != NULL || code > 0 ?
		    LOG_TRANSPORT_REMOTE : NULL,
		.error_code = code,
		.message = message,
		.deliver_usec = result != NULL ?
		    (int64_t)result->duration_usec : -1,
	};

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

/* Records every delivered or failed recipient of the final result in the
 * journal; the log lines follow when the journal is durable. */
static void
group_settle(struct group *g)
{
	struct attempt *a = g->attempt;
	struct smtp_result *r = g->result;

	for (size_t i = 0; i < r->rcpt_count; i++) {
		struct smtp_rcpt_result *rcpt = &r->rcpts[i];

		if (rcpt->outcome == SMTP_DEFERRED) {
			group_log_defer(g, rcpt->address, r, rcpt,
			    smtp_rcpt_defer_code(rcpt), rcpt->message);
			continue;
		}
		spool_header_mark_delivered(a->header, rcpt->address);
		a->changed = true;
		g->journal_pending++;
		a->journal_pending++;
		spool_store_journal_append(a->msg->queue->store, a->msg->id,
		    rcpt->address, group_journal_cb, g);
	}
	if (g->journal_pending == 0)
		group_finish(g);
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
	struct attempt *a = g->attempt;

	for (size_t i = 0; i < g->rcpt_count; i++) {
		if (!permanent) {
			group_log_defer(g, g->rcpts[i], NULL, NULL, code, message);
			continue;
		}
		group_log_failure(g, g->rcpts[i], NULL, message);
		spool_header_mark_delivered(a->header, g->rcpts[i]);
		a->changed = true;
		g->journal_pending++;
		a->journal_pending++;
		spool_store_journal_append(a->msg->queue->store, a->msg->id,
		    g->rcpts[i], group_journal_cb, g);
	}
	if (g->journal_pending == 0)
		group_finish(g);
}

/* ---- delivery over SMTP ---- */

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

static void
group_smtp_cb(void *arg, struct smtp_result *result)
{
	struct group *g = arg;

	g->request = NULL;
	smtp_result_free(g->result);
	g->result = result;
	if (result_is_host_failure(result) && !g->attempt->abandoned &&
	    g->host_index < g->host_count) {
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
		/* No source: the pool takes one from egress_sources. */
		struct smtp_pool_path path = {
			.host_name = h->name,
			.ip = h->ip,
			.port = h->port,
		};
		struct smtp_client_message message = {
			.header = a->header,
			.data_fd = a->data_fd,
			.recipients = g->rcpts,
			.recipient_count = g->rcpt_count,
			.dsn = g->dsn,
		};
		char *error = NULL;

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

/*
 * Splits a smarthost item into name and port: "host", "host:port"
 * (written "host::port" in a colon list), "[ip]" or "[ip]:port", or a
 * bare IPv6 address in a list with another separator.
 */
static int
smarthost_split(const char *item, int default_port, char *name,
    size_t size, int *port)
{
	const char *colon;
	unsigned long long value;

	*port = default_port;
	if (item[0] == '[') {
		const char *close = strchr(item, ']');

		if (close == NULL || (size_t)(close - item) > size)
			return -1;
		memcpy(name, item + 1, (size_t)(close - item - 1));
		name[close - item - 1] = '\0';
		colon = close[1] == ':' ? close + 1 : NULL;
		if (close[1] != '\0' && colon == NULL)
			return -1;
	} else {
		colon = strchr(item, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			colon = NULL;		/* an IPv6 address */
		if (strlcpy_s(name, item, size) >= size)
			return -1;
		if (colon != NULL)
			name[colon - item] = '\0';
	}
	if (colon != NULL) {
		if (parse_uint(colon + 1, 65535, &value) < 0 || value == 0)
			return -1;
		*port = (int)value;
	}
	return name[0] == '\0' ? -1 : 0;
}

static bool
is_ip_literal(const char *text)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, text, buf) == 1 ||
	    inet_pton(AF_INET6, text, buf) == 1;
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
	while (config_list_next(&iter, item, sizeof(item)) != NULL) {
		struct smarthost_lookup *lookup;
		char *error = NULL;

		if (index++ < g->smarthost_index)
			continue;
		g->smarthost_index = index;
		if (index > QUEUE_SMARTHOSTS_MAX ||
		    smarthost_split(item, queue->config->delivery_port, name,
		    sizeof(name), &port) < 0) {
			log_write(LOG_MAIN | LOG_PANIC, g->attempt->msg->id,
			    "invalid smarthost item \"%s\" (expected host, "
			    "host::port or [ip]:port; at most %d items)", item,
			    QUEUE_SMARTHOSTS_MAX);
			continue;
		}
		if (is_ip_literal(name)) {
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
		group_end_without_host(g, false, -1,
		    "no smarthost address could be found");
	else
		group_next_host(g);
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
		group_add_dns_hosts(g, result, g->attempt->msg->queue->config->delivery_port);
		group_next_host(g);
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
		group_route_smarthost(g);
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
	if (msg->rewrites > 0) {
		/* This process still holds the -D lock for the rewrite. */
		msg->start_after_rewrite = true;
		return;
	}
	a = xcalloc(1, sizeof(*a));
	a->msg = msg;
	a->data_fd = -1;

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
	if (a->header->deliver_firsttime) {
		a->header->deliver_firsttime = false;
		a->changed = true;
	}

	msg->attempt = a;
	queue->stats.attempts_running++;
	attempt_make_groups(a);
	a->groups_running = a->group_count;
	for (size_t i = 0; i < a->group_count; i++)
		group_start(&a->groups[i]);
	attempt_maybe_end(a);
}

/* ---- shutdown ---- */

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
			g->done = true;
			a->groups_running--;
		}
	}
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
 * Decides whether an attempt goes on with a frozen message: only when it
 * was forced with QUEUE_FORCE_THAW, which unfreezes it for good, as
 * Exim's -M and -qff do. A skipped message gets no new timer; thawing or
 * forcing it brings it back.
 */
static bool
attempt_pass_frozen(struct queue_msg *msg, struct attempt *a)
{
	if (!a->header->frozen)
		return true;
	if ((msg->force & QUEUE_FORCE_THAW) == 0) {
		log_line_message_event(msg->id, LOG_EVENT_SKIPPED_FROZEN, NULL,
		    NULL);
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
		msg->force = flags;
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
