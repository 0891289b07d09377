/*
 * scheduler.c - queue classes, egress paths and their ready queues (see
 * scheduler.h).
 *
 * Objects:
 *  - classes: an array that only grows. A reload updates a class in
 *    place or appends it, and a class the new policy dropped stays as
 *    it was, so the class index an item carries never changes meaning.
 *  - sources and pools: replaced whole on each load. Paths copy what
 *    they need of their source, so nothing points into the old set.
 *  - paths: one per (source, site), in a hash table, never freed before
 *    the scheduler. A path has a ready list per class (allocated while
 *    items wait), a token bucket, a connection count, a day's count and
 *    a timer that wakes it when it may send again.
 *  - suspensions of a whole source, for paths made later.
 */
#include <sys/socket.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "clock.h"
#include "config.h"
#include "dns.h"
#include "egress.h"
#include "log.h"
#include "policy.h"
#include "policy_tables.h"
#include "scheduler.h"
#include "util.h"

#define SCHED_PATH_BUCKETS	1024
#define SCHED_SUMMARY_BUCKETS	4096
/* The stride of a class is this divided by its priority. */
#define SCHED_STRIDE_UNIT	1000000ULL
#define SCHED_REASON_MAX	200
/* The name of the source that stands for "the system chooses". */
#define SCHED_SYSTEM_SOURCE	"*"
/* Source suspensions remembered for paths made later. */
#define SCHED_SOURCE_SUSPENSIONS_MAX	POLICY_SOURCES_MAX

struct sched_class {
	struct policy_class_decl decl;
	uint64_t stride;
};

struct sched_source {
	char name[POLICY_QUEUE_NAME_MAX + 1];
	char ip[64];
	char ehlo[POLICY_HOST_NAME_MAX + 1];	/* "" for the default */
	bool unusable;			/* cannot be bound on this host */
};

struct sched_pool {
	char name[POLICY_QUEUE_NAME_MAX + 1];
	size_t count;
	size_t *sources;		/* indexes into scheduler.sources */
};

struct sched_list {
	struct sched_item *head, *tail;
	uint64_t pass;			/* stride scheduling */
};

struct sched_path {
	struct scheduler *sched;
	char *key;			/* "source/site" */
	char *site;
	char pool[POLICY_QUEUE_NAME_MAX + 1];
	struct sched_source source;

	bool shaped;			/* shaping asked since the last load */
	struct policy_shaping shaping;
	double tokens;
	uint64_t tokens_usec;		/* when tokens was last brought up */

	unsigned in_flight;
	size_t waiting;			/* items in the ready lists */
	/* One ready list per class, made at the first item and grown with
	 * the classes, so a busy path allocates nothing per item. */
	struct sched_list *lists;
	size_t list_count;
	uint64_t vtime;			/* pass of the last class served */

	time_t suspended_until;
	char suspend_reason[SCHED_REASON_MAX + 1];
	int64_t day;			/* of sent_today */
	uint64_t sent_today;

	struct clock_timer *timer;
	struct sched_path *hash_next;
};

struct sched_suspension {
	char source[POLICY_QUEUE_NAME_MAX + 1];
	char ip[64];
	time_t until;
	char reason[SCHED_REASON_MAX + 1];
};

struct scheduler {
	struct event_base *base;
	const struct config *config;
	size_t class_count;
	struct sched_class classes[SCHED_CLASSES_MAX];
	size_t source_count;
	struct sched_source *sources;
	size_t pool_count;
	struct sched_pool *pools;
	struct sched_path *paths[SCHED_PATH_BUCKETS];
	size_t suspension_count;
	struct sched_suspension suspensions[SCHED_SOURCE_SUSPENSIONS_MAX];
};

static void path_pump(struct sched_path *p);

static uint64_t
hash_text(const char *text)
{
	return hash_fnv(HASH_FNV_START, text, strlen(text));
}

/* The hash of the key "source/site", without building it. */
static uint64_t
hash_path(const char *source, const char *site)
{
	uint64_t h = hash_fnv(HASH_FNV_START, source, strlen(source));

	h = hash_fnv(h, "/", 1);
	return hash_fnv(h, site, strlen(site));
}

/* ---- classes, sources and pools ---- */

static void
sched_class_set(struct sched_class *c, const struct policy_class_decl *decl)
{
	c->decl = *decl;
	if (c->decl.priority == 0)
		c->decl.priority = 1;
	c->stride = SCHED_STRIDE_UNIT / c->decl.priority;
}

static void
scheduler_load_classes(struct scheduler *s,
    const struct policy_declarations *d)
{
	for (size_t i = 0; i < d->class_count; i++) {
		const struct policy_class_decl *decl = &d->classes[i];
		size_t j;

		for (j = 0; j < s->class_count; j++)
			if (strcmp(s->classes[j].decl.name, decl->name) == 0)
				break;
		if (j == s->class_count) {
			if (s->class_count == SCHED_CLASSES_MAX) {
				log_write(LOG_MAIN | LOG_PANIC, NULL, "queue class %s "
				    "ignored: more than %d classes declared since "
				    "the start", decl->name, SCHED_CLASSES_MAX);
				continue;
			}
			s->class_count++;
		}
		sched_class_set(&s->classes[j], decl);
	}
}

static void
scheduler_free_sources(struct scheduler *s)
{
	for (size_t i = 0; i < s->pool_count; i++)
		free(s->pools[i].sources);
	free(s->pools);
	free(s->sources);
	s->pools = NULL;
	s->sources = NULL;
	s->pool_count = s->source_count = 0;
}

/* Without declared sources: those of the egress_sources option. */
static void
scheduler_load_option_sources(struct scheduler *s)
{
	struct config_list_iter iter;
	char item[512];

	if (s->config->egress_sources == NULL)
		return;
	config_list_init(&iter, s->config->egress_sources);
	while (config_list_next(&iter, item, sizeof(item)) != NULL &&
	    s->source_count < POLICY_SOURCES_MAX) {
		struct egress_source parsed;
		struct sched_source *src;
		char *error = NULL;

		/* The option was checked at start-up, and the connection
		 * pool logs the sources it cannot use: skip them here too. */
		if (egress_source_parse(item, &parsed, &error) != 0) {
			free(error);
			continue;
		}
		if (egress_source_check_bind(&parsed) != 0) {
			free(parsed.ehlo_name);
			continue;
		}
		s->sources = xreallocarray(s->sources, s->source_count + 1,
		    sizeof(*s->sources));
		src = &s->sources[s->source_count++];
		memset(src, 0, sizeof(*src));
		strlcpy_s(src->name, parsed.ip, sizeof(src->name));
		strlcpy_s(src->ip, parsed.ip, sizeof(src->ip));
		if (parsed.ehlo_name != NULL)
			strlcpy_s(src->ehlo, parsed.ehlo_name, sizeof(src->ehlo));
		free(parsed.ehlo_name);
	}
}

static void
scheduler_load_sources(struct scheduler *s,
    const struct policy_declarations *d)
{
	bool have_default = false;

	scheduler_free_sources(s);
	if (d->source_count > 0) {
		s->sources = xcalloc(d->source_count, sizeof(*s->sources));
		for (size_t i = 0; i < d->source_count; i++) {
			struct egress_source check = { .ehlo_name = NULL };
			int err;

			strlcpy_s(check.ip, d->sources[i].ip, sizeof(check.ip));
			check.family = strchr(check.ip, ':') != NULL ? AF_INET6 :
			    AF_INET;
			if ((err = egress_source_check_bind(&check)) != 0) {
				log_write(LOG_MAIN | LOG_PANIC, NULL, "egress source "
				    "%s (%s) cannot be bound on this host: %s; "
				    "deliveries will not use it", d->sources[i].name,
				    check.ip, strerror(err));
				s->sources[i].unusable = true;
			}
			strlcpy_s(s->sources[i].name, d->sources[i].name,
			    sizeof(s->sources[i].name));
			strlcpy_s(s->sources[i].ip, d->sources[i].ip,
			    sizeof(s->sources[i].ip));
			strlcpy_s(s->sources[i].ehlo, d->sources[i].ehlo,
			    sizeof(s->sources[i].ehlo));
		}
		s->source_count = d->source_count;
	} else {
		scheduler_load_option_sources(s);
	}

	s->pools = xcalloc(d->pool_count + 1, sizeof(*s->pools));
	for (size_t i = 0; i < d->pool_count; i++) {
		struct sched_pool *p = &s->pools[s->pool_count++];

		strlcpy_s(p->name, d->pools[i].name, sizeof(p->name));
		p->count = d->pools[i].source_count;
		p->sources = xcalloc(p->count + 1, sizeof(*p->sources));
		memcpy(p->sources, d->pools[i].sources,
		    p->count * sizeof(*p->sources));
		if (strcmp(p->name, "default") == 0)
			have_default = true;
	}
	if (!have_default) {
		/* Without a declared "default" pool, it has every source. */
		struct sched_pool *p = &s->pools[s->pool_count++];

		strlcpy_s(p->name, "default", sizeof(p->name));
		p->count = d->source_count > 0 ? d->source_count :
		    s->source_count;
		p->sources = xcalloc(p->count + 1, sizeof(*p->sources));
		for (size_t i = 0; i < p->count; i++)
			p->sources[i] = i;
	}
}

struct scheduler *
scheduler_new(struct event_base *base, const struct config *config)
{
	struct scheduler *s = xcalloc(1, sizeof(*s));

	s->base = base;
	s->config = config;
	scheduler_load(s, NULL);
	return s;
}

void
scheduler_free(struct scheduler *s)
{
	if (s == NULL)
		return;
	for (size_t b = 0; b < SCHED_PATH_BUCKETS; b++) {
		struct sched_path *p = s->paths[b];

		while (p != NULL) {
			struct sched_path *next = p->hash_next;

			if (p->waiting > 0 || p->in_flight > 0)
				fatal_bug("scheduler freed with items on path %s",
				    p->key);
			clock_timer_free(p->timer);
			free(p->lists);
			free(p->key);
			free(p->site);
			free(p);
			p = next;
		}
	}
	scheduler_free_sources(s);
	free(s);
}

void
scheduler_load(struct scheduler *s, struct policy_state *ps)
{
	struct policy_declarations *d = xcalloc(1, sizeof(*d));

	/* Large: on the heap, not the stack. */
	policy_declarations_get(ps, d);
	scheduler_load_classes(s, d);
	scheduler_load_sources(s, d);
	free(d);
	for (size_t b = 0; b < SCHED_PATH_BUCKETS; b++)
		for (struct sched_path *p = s->paths[b]; p != NULL;
		    p = p->hash_next) {
			p->shaped = false;
			/* New limits may let waiting items go. */
			if (p->waiting > 0)
				clock_timer_arm(p->timer, 0);
		}
}

size_t
scheduler_class_find(const struct scheduler *s, const char *name,
    bool local)
{
	const char *fallback = local ? SCHED_CLASS_LOCAL : SCHED_CLASS_REMOTE;

	for (int round = 0; round < 2; round++) {
		const char *want = round == 0 ? name : fallback;

		if (want == NULL || want[0] == '\0')
			continue;
		for (size_t i = 0; i < s->class_count; i++)
			if (strcmp(s->classes[i].decl.name, want) == 0)
				return i;
	}
	return 0;
}

const char *
scheduler_class_name(const struct scheduler *s, size_t index)
{
	return index < s->class_count ? s->classes[index].decl.name : "";
}

size_t
scheduler_class_count(const struct scheduler *s)
{
	return s->class_count;
}

const char *
scheduler_class_pool(const struct scheduler *s, size_t index)
{
	if (index >= s->class_count || s->classes[index].decl.pool[0] == '\0')
		return "default";
	return s->classes[index].decl.pool;
}

const char *
scheduler_class_retry(const struct scheduler *s, size_t index)
{
	return index < s->class_count ? s->classes[index].decl.retry : "";
}

size_t
scheduler_class_header_count(const struct scheduler *s, size_t index)
{
	return index < s->class_count ?
	    s->classes[index].decl.header_count : 0;
}

const struct policy_class_header *
scheduler_class_header(const struct scheduler *s, size_t index,
    size_t header)
{
	return &s->classes[index].decl.headers[header];
}

/* ---- paths ---- */

static const struct sched_suspension *
source_suspension(const struct scheduler *s, const struct sched_source *src)
{
	time_t now = clock_now();

	for (size_t i = 0; i < s->suspension_count; i++) {
		const struct sched_suspension *sus = &s->suspensions[i];

		if (sus->until > now && strcmp(sus->source, src->name) == 0 &&
		    strcmp(sus->ip, src->ip) == 0)
			return sus;
	}
	return NULL;
}

static void
path_timer_cb(void *arg)
{
	path_pump(arg);
}

static struct sched_path *
path_find(const struct scheduler *s, const char *source_name,
    const char *site)
{
	size_t len = strlen(source_name);
	struct sched_path *p = s->paths[hash_path(source_name, site) %
	    SCHED_PATH_BUCKETS];

	while (p != NULL && (strncmp(p->key, source_name, len) != 0 ||
	    p->key[len] != '/' || strcmp(p->key + len + 1, site) != 0))
		p = p->hash_next;
	return p;
}

static struct sched_path *
path_get(struct scheduler *s, const struct sched_source *src,
    const char *site, const char *pool)
{
	struct sched_path *p = path_find(s, src->name, site);
	const struct sched_suspension *sus;
	uint64_t bucket;

	if (p != NULL) {
		/* The source may have a new IP or EHLO name after a reload. */
		p->source = *src;
		strlcpy_s(p->pool, pool, sizeof(p->pool));
		return p;
	}
	p = xcalloc(1, sizeof(*p));
	p->sched = s;
	p->key = xasprintf("%s/%s", src->name, site);
	p->site = xstrdup(site);
	p->source = *src;
	strlcpy_s(p->pool, pool, sizeof(p->pool));
	p->timer = clock_timer_new(s->base, path_timer_cb, p);
	p->day = policy_counters_day_of(clock_now());
	if ((sus = source_suspension(s, src)) != NULL) {
		p->suspended_until = sus->until;
		strlcpy_s(p->suspend_reason, sus->reason,
		    sizeof(p->suspend_reason));
	}
	bucket = hash_text(p->key) % SCHED_PATH_BUCKETS;
	p->hash_next = s->paths[bucket];
	s->paths[bucket] = p;
	return p;
}

/* Asks the policy for the path's limits once per load. */
static void
path_shape(struct sched_path *p)
{
	struct policy_state *ps;
	struct policy_shaping_in in = {
		.source_name = p->source.name,
		.source_ip = p->source.ip,
		.site = p->site,
		.pool = p->pool,
	};
	struct policy_shaping out;

	if (p->shaped)
		return;
	p->shaped = true;
	memset(&out, 0, sizeof(out));
	ps = policy_current();
	if (policy_shaping(ps, &in, &out) == POLICY_QUEUE_FAILED) {
		/* Logged by the policy engine: this path goes unshaped until
		 * the next reload, rather than holding its mail. */
		memset(&out, 0, sizeof(out));
	}
	policy_state_unref(ps);
	if (out.rate_per_second > 0 && out.burst == 0)
		out.burst = 1;
	/* A new bucket starts full; a changed one keeps what it had. */
	if (p->shaping.rate_per_second == 0 || p->tokens > out.burst)
		p->tokens = out.burst;
	p->tokens_usec = clock_monotonic_usec();
	p->shaping = out;
}

bool
sched_path_suspended(const struct sched_path *p, time_t now)
{
	return p->suspended_until > now;
}

/* Brings the day's count to today. */
static void
path_roll_day(struct sched_path *p, time_t now)
{
	int64_t day = policy_counters_day_of(now);

	if (day != p->day) {
		p->day = day;
		p->sent_today = 0;
	}
}

static bool
path_over_cap(struct sched_path *p, time_t now)
{
	path_roll_day(p, now);
	return p->shaping.daily_cap > 0 &&
	    p->sent_today >= p->shaping.daily_cap;
}

/* Refills the bucket and returns the microseconds until a whole token
 * is in it, or 0 when one is. */
static uint64_t
path_token_wait(struct sched_path *p)
{
	uint64_t now = clock_monotonic_usec();
	double rate = p->shaping.rate_per_second;

	if (rate <= 0)
		return 0;
	if (now > p->tokens_usec) {
		p->tokens += (double)(now - p->tokens_usec) * rate / 1e6;
		if (p->tokens > p->shaping.burst)
			p->tokens = p->shaping.burst;
	}
	p->tokens_usec = now;
	/* A millionth of a token is forgiven, so that rounding never keeps
	 * back the token that a whole second of the clock brought. */
	if (p->tokens >= 1.0 - 1e-6)
		return 0;
	return (uint64_t)ceil((1.0 - p->tokens) * 1e6 / rate);
}

size_t
scheduler_class_next(const struct scheduler *s, const bool *has,
    uint64_t *pass, uint64_t *vtime)
{
	size_t best = SIZE_MAX;

	for (size_t i = 0; i < s->class_count; i++) {
		const struct sched_class *c = &s->classes[i], *b;

		if (!has[i])
			continue;
		if (best == SIZE_MAX) {
			best = i;
			continue;
		}
		b = &s->classes[best];
		if (c->decl.strict != b->decl.strict) {
			if (c->decl.strict)
				best = i;
			continue;
		}
		if (c->decl.strict ? c->decl.priority > b->decl.priority :
		    pass[i] < pass[best])
			best = i;
	}
	if (best != SIZE_MAX && !s->classes[best].decl.strict) {
		*vtime = pass[best];
		pass[best] += s->classes[best].stride;
	}
	return best;
}

void
sched_class_wake(uint64_t *pass, uint64_t vtime)
{
	if (*pass < vtime)
		*pass = vtime;
}

/* The next item to go, by scheduler_class_next(). */
static struct sched_item *
path_take(struct sched_path *p)
{
	struct scheduler *s = p->sched;
	bool has[SCHED_CLASSES_MAX];
	uint64_t pass[SCHED_CLASSES_MAX];
	struct sched_list *l;
	struct sched_item *item;
	size_t best;

	for (size_t i = 0; i < s->class_count; i++) {
		has[i] = i < p->list_count && p->lists[i].head != NULL;
		pass[i] = i < p->list_count ? p->lists[i].pass : 0;
	}
	best = scheduler_class_next(s, has, pass, &p->vtime);
	if (best == SIZE_MAX)
		return NULL;
	l = &p->lists[best];
	l->pass = pass[best];
	item = l->head;
	l->head = item->next;
	if (l->head == NULL)
		l->tail = NULL;
	item->next = NULL;
	p->waiting--;
	return item;
}

/* Hands the waiting items that may move back to their owners, from the
 * loop; returns how many moved. */
static size_t
path_reroute(struct sched_path *p)
{
	size_t moved = 0;

	for (size_t i = 0; i < p->list_count; i++) {
		struct sched_item *prev = NULL, *item = p->lists[i].head;

		while (item != NULL) {
			struct sched_item *next = item->next;
			sched_go_fn reroute = item->reroute;

			if (reroute == NULL) {
				prev = item;
				item = next;
				continue;
			}
			if (prev != NULL)
				prev->next = next;
			else
				p->lists[i].head = next;
			if (p->lists[i].tail == item)
				p->lists[i].tail = prev;
			p->waiting--;
			item->state = SCHED_ITEM_IDLE;
			item->path = NULL;
			item->next = NULL;
			item->reroute = NULL;
			moved++;
			/* The owner submits it again, perhaps to this list;
			 * the walk goes on from next, already taken. */
			reroute(item->arg);
			item = next;
		}
	}
	return moved;
}

/* Lets waiting items go while the path's limits allow. */
static void
path_pump(struct sched_path *p)
{
	time_t now = clock_now();

	path_shape(p);
	while (p->waiting > 0) {
		struct sched_item *item;
		uint64_t wait;

		if (sched_path_suspended(p, now)) {
			if (p->shaping.reroute_when_suspended &&
			    path_reroute(p) > 0)
				continue;
			clock_timer_arm(p->timer,
			    (uint64_t)(p->suspended_until - now) * 1000000);
			return;
		}
		if (path_over_cap(p, now)) {
			/* Until the next day starts, checked hourly. */
			clock_timer_arm(p->timer, 3600ULL * 1000000);
			return;
		}
		if (p->shaping.max_connections > 0 &&
		    p->in_flight >= p->shaping.max_connections)
			return;		/* sched_item_done() wakes it */
		if ((wait = path_token_wait(p)) > 0) {
			clock_timer_arm(p->timer, wait);
			return;
		}
		if ((item = path_take(p)) == NULL)
			fatal_bug("path %s counts waiting items it does not hold",
			    p->key);
		if (p->shaping.rate_per_second > 0)
			p->tokens -= 1.0;
		p->in_flight++;
		item->state = SCHED_ITEM_IN_FLIGHT;
		item->go(item->arg);	/* may end the item at once */
	}
}

void
sched_item_submit(struct sched_path *p, struct sched_item *item,
    size_t class_index, sched_go_fn go, void *arg)
{
	struct sched_list *l;

	if (item->state != SCHED_ITEM_IDLE)
		fatal_bug("item submitted twice to path %s", p->key);
	if (class_index >= p->sched->class_count)
		class_index = 0;
	if (p->list_count < p->sched->class_count) {
		p->lists = xreallocarray(p->lists, p->sched->class_count,
		    sizeof(*p->lists));
		memset(p->lists + p->list_count, 0,
		    (p->sched->class_count - p->list_count) * sizeof(*p->lists));
		p->list_count = p->sched->class_count;
	}
	l = &p->lists[class_index];
	if (l->head == NULL)
		sched_class_wake(&l->pass, p->vtime);
	item->path = p;
	item->class_index = class_index;
	item->state = SCHED_ITEM_READY;
	item->go = go;
	item->arg = arg;
	item->next = NULL;
	if (l->tail != NULL)
		l->tail->next = item;
	else
		l->head = item;
	l->tail = item;
	p->waiting++;
	/* From the loop, never inside the owner's call. */
	if (!clock_timer_pending(p->timer))
		clock_timer_arm(p->timer, 0);
}

void
sched_item_done(struct sched_item *item, bool sent)
{
	struct sched_path *p = item->path;

	if (item->state == SCHED_ITEM_IDLE || p == NULL)
		return;
	if (item->state == SCHED_ITEM_IN_FLIGHT) {
		p->in_flight--;
		if (sent) {
			path_roll_day(p, clock_now());
			p->sent_today++;
		}
	} else {
		struct sched_list *l = &p->lists[item->class_index];
		struct sched_item *prev = NULL;

		for (struct sched_item *i = l->head; i != NULL; i = i->next) {
			if (i == item)
				break;
			prev = i;
		}
		if (prev != NULL)
			prev->next = item->next;
		else if (l->head == item)
			l->head = item->next;
		if (l->tail == item)
			l->tail = prev;
		p->waiting--;
	}
	item->state = SCHED_ITEM_IDLE;
	item->path = NULL;
	item->next = NULL;
	if (p->waiting > 0 && !clock_timer_pending(p->timer))
		clock_timer_arm(p->timer, 0);
}

const char *
sched_path_source_ip(const struct sched_path *p)
{
	return p->source.ip;
}

const char *
sched_path_helo(const struct sched_path *p)
{
	return p->source.ehlo[0] != '\0' ? p->source.ehlo : NULL;
}

const char *
sched_path_source_name(const struct sched_path *p)
{
	return p->source.name;
}

const char *
sched_path_site(const struct sched_path *p)
{
	return p->site;
}

const char *
sched_path_key(const struct sched_path *p)
{
	return p->key;
}

const char *
sched_path_pool(const struct sched_path *p)
{
	return p->pool;
}

unsigned
sched_path_max_messages(const struct sched_path *p)
{
	return p->shaping.max_messages_per_connection;
}

unsigned
sched_path_max_connections(const struct sched_path *p)
{
	return p->shaping.max_connections;
}

unsigned
sched_path_max_recipients(const struct sched_path *p)
{
	return p->shaping.max_recipients_per_message;
}

/* ---- choosing a source ---- */

static const struct sched_pool *
pool_find(const struct scheduler *s, const char *name)
{
	for (size_t i = 0; i < s->pool_count; i++)
		if (strcmp(s->pools[i].name, name) == 0)
			return &s->pools[i];
	return NULL;
}

/* Weighted by score among the usable sources; when none is usable,
 * among all, so mail waits on a path rather than nowhere. */
static size_t
choose_by_score(const struct policy_source_choice *c, size_t n)
{
	double total = 0, pick;

	for (int usable_only = 1; usable_only >= 0; usable_only--) {
		total = 0;
		for (size_t i = 0; i < n; i++)
			if (!usable_only || (!c[i].suspended && !c[i].over_cap))
				total += c[i].score > 0 ? c[i].score : 0.5;
		if (total <= 0)
			continue;
		pick = (double)random() / ((double)RAND_MAX + 1.0) * total;
		for (size_t i = 0; i < n; i++) {
			if (usable_only && (c[i].suspended || c[i].over_cap))
				continue;
			pick -= c[i].score > 0 ? c[i].score : 0.5;
			if (pick < 0)
				return i;
		}
		/* Rounding: the last usable one. */
		for (size_t i = n; i-- > 0;)
			if (!usable_only || (!c[i].suspended && !c[i].over_cap))
				return i;
	}
	return 0;
}

struct sched_path *
scheduler_choose(struct scheduler *s, const char *msgid, const char *site,
    const char *pool_name, size_t class_index, const char *domain,
    char **error)
{
	const struct sched_pool *pool = pool_find(s, pool_name);
	struct policy_source_choice *choices;
	struct policy_path_in in;
	struct policy_state *ps;
	enum policy_queue_result rc;
	time_t now = clock_now();
	size_t index = 0;

	if (pool == NULL) {
		*error = xasprintf("egress pool \"%s\" is not declared",
		    pool_name);
		return NULL;
	}
	if (pool->count == 0) {
		static const struct sched_source system = {
			.name = SCHED_SYSTEM_SOURCE,
		};

		return path_get(s, &system, site, pool->name);
	}

	choices = xcalloc(pool->count, sizeof(*choices));
	for (size_t i = 0; i < pool->count; i++) {
		const struct sched_source *src = &s->sources[pool->sources[i]];
		struct sched_path *p = path_find(s, src->name, site);

		choices[i].name = src->name;
		choices[i].ip = src->ip;
		choices[i].score = (int)(policy_scores_get(src->ip, site) + 0.5);
		choices[i].warmup_day = policy_warmup_day(src->ip);
		choices[i].suspended = source_suspension(s, src) != NULL ||
		    src->unusable;
		if (p != NULL) {
			path_shape(p);
			choices[i].suspended |= sched_path_suspended(p, now);
			choices[i].over_cap = path_over_cap(p, now);
			choices[i].sent_today = p->sent_today;
		}
	}
	in = (struct policy_path_in){
		.msgid = msgid,
		.site = site,
		.pool = pool->name,
		.class_name = scheduler_class_name(s, class_index),
		.domain = domain,
		.sources = choices,
		.source_count = pool->count,
	};
	ps = policy_current();
	rc = policy_select_source(ps, &in, &index);
	policy_state_unref(ps);
	if (rc == POLICY_QUEUE_FAILED) {
		free(choices);
		*error = xstrdup("the policy's select_source handler failed");
		return NULL;
	}
	if (rc != POLICY_QUEUE_OK || index >= pool->count)
		index = choose_by_score(choices, pool->count);
	free(choices);
	return path_get(s, &s->sources[pool->sources[index]], site, pool->name);
}

/* ---- default sites ---- */

static int
compare_names(const void *a, const void *b)
{
	return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

/* Writes the site of a domain when the policy names none to out. */
static void
sched_default_site(const struct dns_result *mx, const char *smarthost,
    const char *domain, char *out, size_t size)
{
	const char **names;
	size_t n = 0, used = 0;
	unsigned best = UINT32_MAX;

	out[0] = '\0';
	if (mx == NULL) {
		struct config_list_iter iter;
		char item[POLICY_SITE_MAX + 1];

		config_list_init(&iter, smarthost);
		if (config_list_next(&iter, item, sizeof(item)) != NULL)
			strlcpy_s(out, item, size);
	} else {
		names = xcalloc(mx->host_count + 1, sizeof(*names));
		for (size_t i = 0; i < mx->host_count; i++)
			if (mx->hosts[i].preference < best)
				best = mx->hosts[i].preference;
		for (size_t i = 0; i < mx->host_count; i++)
			if (mx->hosts[i].preference == best)
				names[n++] = mx->hosts[i].name;
		qsort(names, n, sizeof(*names), compare_names);
		for (size_t i = 0; i < n; i++) {
			size_t len = strlen(names[i]);

			if (i > 0 && strcasecmp(names[i], names[i - 1]) == 0)
				continue;
			if (used + len + 2 > size)
				break;
			if (used > 0)
				out[used++] = ',';
			for (size_t j = 0; j <= len; j++)
				out[used + j] = (char)tolower(
				    (unsigned char)names[i][j]);
			used += len;
		}
		free(names);
	}
	if (out[0] == '\0')
		strlcpy_s(out, domain, size);
}

enum policy_queue_result
scheduler_route(struct scheduler *s, struct policy_route_in *in,
    size_t class_index, const struct dns_result *mx,
    struct policy_route_out *out)
{
	char site[POLICY_SITE_MAX + 1];
	const char *pool = scheduler_class_pool(s, class_index);
	struct policy_mx *hosts = NULL;
	struct policy_state *ps;
	enum policy_queue_result rc;

	sched_default_site(mx, s->config->smarthost, in->domain, site,
	    sizeof(site));
	memset(out, 0, sizeof(*out));
	strlcpy_s(out->site, site, sizeof(out->site));
	strlcpy_s(out->pool, pool, sizeof(out->pool));
	in->class_name = scheduler_class_name(s, class_index);
	in->mx_count = mx != NULL ? mx->host_count : 0;
	if (in->mx_count > 0) {
		hosts = xcalloc(in->mx_count, sizeof(*hosts));
		for (size_t i = 0; i < in->mx_count; i++) {
			hosts[i].name = mx->hosts[i].name;
			hosts[i].preference = mx->hosts[i].preference;
		}
	}
	in->mx = hosts;
	ps = policy_current();
	rc = policy_route(ps, in, out);
	policy_state_unref(ps);
	free(hosts);
	in->mx = NULL;
	in->mx_count = 0;
	if (rc != POLICY_QUEUE_OK) {
		strlcpy_s(out->site, site, sizeof(out->site));
		strlcpy_s(out->pool, pool, sizeof(out->pool));
		out->route[0] = '\0';
		out->host_count = 0;
		out->port = 0;
		return rc;
	}
	/* A handler that emptied a field leaves its default. */
	if (out->site[0] == '\0')
		strlcpy_s(out->site, site, sizeof(out->site));
	if (out->pool[0] == '\0')
		strlcpy_s(out->pool, pool, sizeof(out->pool));
	return rc;
}

/* ---- suspensions ---- */

static bool
source_matches(const struct sched_source *src, const char *name)
{
	return strcmp(src->name, name) == 0 || strcmp(src->ip, name) == 0;
}

static void
path_set_suspension(struct sched_path *p, time_t until, const char *reason)
{
	p->suspended_until = until;
	strlcpy_s(p->suspend_reason, reason, sizeof(p->suspend_reason));
	if (p->waiting > 0)
		clock_timer_arm(p->timer, 0);
}

int
scheduler_suspend(struct scheduler *s, const char *source, const char *site,
    uint32_t seconds, const char *reason, const char *who, char *error,
    size_t size)
{
	time_t until = seconds > 0 ? clock_now() + (time_t)seconds : 0;
	const struct sched_source *src = NULL;
	size_t matched = 0;

	for (size_t i = 0; i < s->source_count && src == NULL; i++)
		if (source_matches(&s->sources[i], source))
			src = &s->sources[i];
	if (src == NULL && strcmp(source, SCHED_SYSTEM_SOURCE) != 0) {
		snprintf(error, size, "no egress source is called %s", source);
		return -1;
	}
	if (site != NULL) {
		static const struct sched_source system = {
			.name = SCHED_SYSTEM_SOURCE,
		};
		struct sched_path *p = path_get(s, src != NULL ? src : &system,
		    site, "default");

		path_set_suspension(p, until, reason);
		matched = 1;
	} else {
		struct sched_suspension *sus = NULL;

		for (size_t i = 0; i < s->suspension_count; i++)
			if (strcmp(s->suspensions[i].source, src->name) == 0)
				sus = &s->suspensions[i];
		if (sus == NULL && s->suspension_count <
		    SCHED_SOURCE_SUSPENSIONS_MAX)
			sus = &s->suspensions[s->suspension_count++];
		if (sus != NULL) {
			strlcpy_s(sus->source, src->name, sizeof(sus->source));
			strlcpy_s(sus->ip, src->ip, sizeof(sus->ip));
			sus->until = until;
			strlcpy_s(sus->reason, reason, sizeof(sus->reason));
		}
		for (size_t b = 0; b < SCHED_PATH_BUCKETS; b++)
			for (struct sched_path *p = s->paths[b]; p != NULL;
			    p = p->hash_next)
				if (source_matches(&p->source, src->name)) {
					path_set_suspension(p, until, reason);
					matched++;
				}
	}
	if (seconds > 0)
		log_write(LOG_MAIN, NULL, "egress %s%s%s suspended for %us by "
		    "%s: %s", source, site != NULL ? "/" : "",
		    site != NULL ? site : "", seconds, who, reason);
	else
		log_write(LOG_MAIN, NULL, "egress %s%s%s resumed by %s",
		    source, site != NULL ? "/" : "", site != NULL ? site : "",
		    who);
	(void)matched;
	return 0;
}

/* ---- the summary ---- */

struct summary_entry {
	char *kind;
	char *name;
	struct sched_counts counts;
	char *note;
	struct summary_entry *next;
};

struct sched_summary {
	struct summary_entry *buckets[SCHED_SUMMARY_BUCKETS];
	size_t count;
};

struct sched_summary *
sched_summary_new(void)
{
	return xcalloc(1, sizeof(struct sched_summary));
}

static struct summary_entry *
summary_entry(struct sched_summary *sum, const char *kind, const char *name)
{
	uint64_t b = (hash_text(kind) * 31 + hash_text(name)) %
	    SCHED_SUMMARY_BUCKETS;
	struct summary_entry *e;

	for (e = sum->buckets[b]; e != NULL; e = e->next)
		if (strcmp(e->kind, kind) == 0 && strcmp(e->name, name) == 0)
			return e;
	e = xcalloc(1, sizeof(*e));
	e->kind = xstrdup(kind);
	e->name = xstrdup(name);
	e->next = sum->buckets[b];
	sum->buckets[b] = e;
	sum->count++;
	return e;
}

void
sched_summary_add(struct sched_summary *sum, const char *kind,
    const char *name, const struct sched_counts *add)
{
	struct summary_entry *e = summary_entry(sum, kind, name);

	e->counts.scheduled += add->scheduled;
	e->counts.ready += add->ready;
	e->counts.in_flight += add->in_flight;
	e->counts.suspended += add->suspended;
}

void
scheduler_summarize(const struct scheduler *s, struct sched_summary *sum)
{
	time_t now = clock_now();
	static const struct sched_counts none;

	for (size_t i = 0; i < s->class_count; i++)
		sched_summary_add(sum, "class", s->classes[i].decl.name, &none);
	for (size_t b = 0; b < SCHED_PATH_BUCKETS; b++)
		for (const struct sched_path *p = s->paths[b]; p != NULL;
		    p = p->hash_next) {
			struct summary_entry *e;
			struct tm tm;
			char when[32];

			if (!sched_path_suspended(p, now))
				continue;
			e = summary_entry(sum, "path", p->key);
			localtime_r(&p->suspended_until, &tm);
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
			free(e->note);
			e->note = xasprintf(" until=%s", when);
		}
}

static int
summary_compare(const void *a, const void *b)
{
	static const char *const order[] = { "total", "class", "domain",
	    "site", "path" };
	const struct summary_entry *x = *(struct summary_entry *const *)a;
	const struct summary_entry *y = *(struct summary_entry *const *)b;
	int rx = 5, ry = 5;

	for (int i = 0; i < 5; i++) {
		if (strcmp(x->kind, order[i]) == 0)
			rx = i;
		if (strcmp(y->kind, order[i]) == 0)
			ry = i;
	}
	if (rx != ry)
		return rx - ry;
	return strcmp(x->name, y->name);
}

void
sched_summary_print(struct sched_summary *sum, struct evbuffer *out)
{
	struct summary_entry **all = xcalloc(sum->count + 1, sizeof(*all));
	size_t n = 0;

	for (size_t b = 0; b < SCHED_SUMMARY_BUCKETS; b++)
		for (struct summary_entry *e = sum->buckets[b]; e != NULL;
		    e = e->next)
			all[n++] = e;
	qsort(all, n, sizeof(*all), summary_compare);
	for (size_t i = 0; i < n; i++) {
		const struct summary_entry *e = all[i];

		evbuffer_add_printf(out, "%s%s%s scheduled=%llu ready=%llu "
		    "in_flight=%llu suspended=%llu%s\n", e->kind,
		    e->name[0] != '\0' ? " " : "", e->name,
		    (unsigned long long)e->counts.scheduled,
		    (unsigned long long)e->counts.ready,
		    (unsigned long long)e->counts.in_flight,
		    (unsigned long long)e->counts.suspended,
		    e->note != NULL ? e->note : "");
	}
	for (size_t i = 0; i < n; i++) {
		free(all[i]->kind);
		free(all[i]->name);
		free(all[i]->note);
		free(all[i]);
	}
	free(all);
	free(sum);
}
