/*
 * scheduler.c - the delivery queue's memory per message, the cost of
 * one scheduling decision, and a spool generator for the daemon-level
 * measurement in bench/scheduler_spool.py.
 *
 * Usage: scheduler memory [MESSAGES]
 *        scheduler decisions [ITEMS]
 *        scheduler spool DIRECTORY MESSAGES
 *
 * memory     adds MESSAGES (default 100000) synthetic messages to a
 *            queue with queue_add_header(), as the daemon's start-up
 *            scan does, without running the event loop, so no attempt
 *            starts. It prints the heap bytes per message that
 *            mallinfo2() counts in use (uordblks plus hblkhd), the heap
 *            obtained from the system and the resident set growth, and
 *            the time of one add near the start and near the end of the
 *            run.
 * decisions  times scheduler_choose(), sched_item_submit(), the path's
 *            pump from the event loop and sched_item_done() over ITEMS
 *            items (default 400000): 4 classes, 4 sources in one pool
 *            and 100 sites, once with a policy without a shaping
 *            handler and once with one. The figures are CPU time of
 *            the thread per item, with items one at a time and in
 *            batches, and of scheduler_choose() alone.
 * spool      writes MESSAGES frozen messages (-H and -D files) into
 *            DIRECTORY/input, laid out as Exim lays out a spool without
 *            split_spool_directory.
 *
 * Every figure is printed as "name value" on its own line. Messages
 * have 1 to 3 recipients at 1 or 2 of 100 domains, and four in five
 * carry a queue class in the acl_m_sluice_class variable.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "clock.h"
#include "config.h"
#include "msgid.h"
#include "policy.h"
#include "queue.h"
#include "scheduler.h"
#include "spool_header.h"
#include "util.h"

#define BENCH_DOMAINS		100
#define BENCH_SITES		100
#define BENCH_CLASSES		4
#define BENCH_MESSAGES_MAX	10000000ULL
#define BENCH_WARMUP		1000
/* Items submitted before the loop runs, in the batch runs. */
#define BENCH_BATCH		1000
/* Event loop runs one batch may take before the benchmark gives up. */
#define BENCH_LOOPS_MAX		1000

static const char *const bench_classes[] = {
	"critical", "transactional", "personal", "newsletter", NULL,
};

static const char bench_policy_sources[] =
    "for i = 1, 4 do\n"
    "  sluice.source{ name = 's' .. i, ip = '127.0.0.' .. (i + 1) }\n"
    "end\n"
    "sluice.pool{ name = 'default', sources = { 's1', 's2', 's3', 's4' } }\n";

/* Limits that never hold an item back here, so every check runs. */
static const char bench_policy_shaping[] =
    "sluice.on('shaping', function(path)\n"
    "  return { max_connections = 10, max_message_rate = '1000000/s',\n"
    "           burst = 1000000, daily_cap = 1000000000 }\n"
    "end)\n";

/* Nanoseconds on the monotonic clock, because clock_monotonic_usec()
 * is too coarse for calls that take less than a microsecond. */
static uint64_t
bench_nsec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/* Nanoseconds of CPU time of this thread, so that other processes on
 * the machine lengthen the decision figures less than they lengthen
 * wall time. Reading it is a system call, so it brackets whole runs. */
static uint64_t
bench_cpu_nsec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static void
bench_write_file(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);

	if (fd < 0)
		fatal("cannot create %s", path);
	while (len > 0) {
		ssize_t n = write(fd, text, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fatal("cannot write %s", path);
		text += n;
		len -= (size_t)n;
	}
	if (close(fd) < 0)
		fatal("cannot write %s", path);
}

/* Writes a configuration (and policy, when not NULL) into dir and loads
 * it. */
static struct config *
bench_config(const char *dir, const char *policy)
{
	char path[256], text[512];
	struct config *config = NULL;
	char *error = NULL;

	snprintf(text, sizeof(text), "primary_hostname = bench.example\n"
	    "spool_directory = %s\n", dir);
	if (policy != NULL) {
		snprintf(path, sizeof(path), "%s/policy.lua", dir);
		bench_write_file(path, policy, strlen(policy));
		strlcpy_s(text + strlen(text), "lua_policy = policy.lua\n",
		    sizeof(text) - strlen(text));
	}
	snprintf(path, sizeof(path), "%s/sluice.conf", dir);
	bench_write_file(path, text, strlen(text));
	if (config_load(path, NULL, 0, &config, &error) < 0)
		fatalx("%s", error);
	return config;
}

static void
bench_remove_dir(const char *dir)
{
	char command[256];

	snprintf(command, sizeof(command), "rm -rf '%s'", dir);
	if (system(command) != 0)
		fatalx("cannot remove %s", dir);
}

/* Writes the id of message number n, a different one for each n. */
static void
bench_message_id(uint64_t n, time_t base, char id[MSGID_SIZE])
{
	struct msgid_parts parts = {
		.time = base + (time_t)(n / MSGID_CURRENT_TICKS),
		.pid = 4242,
		.subsecond = (uint32_t)(n % MSGID_CURRENT_TICKS),
	};

	msgid_encode(MSGID_FORMAT_CURRENT, &parts, id);
}

/* Fills h (zeroed by the caller) with message number n: 1 to 3
 * recipients at 1 or 2 domains, and a queue class for four in five. */
static void
bench_fill_header(struct spool_header *h, uint64_t n, time_t received,
    bool frozen)
{
	static const char *const fields[] = {
		"Received: from bench by bench.example with local\n",
		"From: News <news@shop.example>\n",
		"Subject: Spring offers\n",
	};
	size_t recipients = 1 + n % 3;
	size_t domains = 1 + (n / 3) % 2;
	const char *class = bench_classes[n % ARRAY_SIZE(bench_classes)];
	char text[128];

	bench_message_id(n, received, h->id);
	h->login = xstrdup("bench");
	h->uid = getuid();
	h->gid = getgid();
	h->sender = xstrdup("news@shop.example");
	h->received_time = received;
	h->received_protocol = xstrdup("local");
	h->body_linecount = 1;
	h->max_received_linelength = 6;
	h->local = true;
	if (frozen) {
		h->frozen = true;
		h->frozen_at = received;
	}
	if (class != NULL)
		spool_header_set_acl(h, SPOOL_ACL_CLASS, class);
	for (size_t i = 0; i < recipients; i++) {
		snprintf(text, sizeof(text), "user%llu.%zu@d%llu.example",
		    (unsigned long long)n, i, (unsigned long long)
		    ((n + i % domains) % BENCH_DOMAINS));
		spool_header_add_recipient(h, text);
	}
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		spool_header_add_field(h, spool_field_flag_for_name(fields[i],
		    strcspn(fields[i], ":")), fields[i], strlen(fields[i]));
	snprintf(text, sizeof(text), "To: user%llu.0@d%llu.example\n",
	    (unsigned long long)n, (unsigned long long)(n % BENCH_DOMAINS));
	spool_header_add_field(h, 'T', text, strlen(text));
}

/* The resident set in bytes, from /proc/self/statm. */
static size_t
bench_rss(void)
{
	unsigned long size, resident;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL || fscanf(f, "%lu %lu", &size, &resident) != 2)
		fatalx("cannot read /proc/self/statm");
	fclose(f);
	return resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* ---- memory per queued message ---- */

static void
bench_memory(uint64_t messages)
{
	char dir[] = "/tmp/sluice-bench-XXXXXX";
	struct config *config;
	struct event_base *base;
	struct queue *queue;
	struct mallinfo2 before, after;
	size_t rss_before, rss_after;
	uint64_t tenth = messages / 10 > 0 ? messages / 10 : 1;
	uint64_t add_nsec = 0, first_nsec = 0, last_nsec = 0;
	time_t received = clock_now() - 86400;

	if (mkdtemp(dir) == NULL)
		fatal("cannot create a folder in /tmp");
	config = bench_config(dir, NULL);
	if ((base = event_base_new()) == NULL)
		fatalx("cannot create an event loop");
	/* The queue never reaches the store or the resolver before its
	 * loop runs an attempt, and this loop never runs. */
	queue = queue_new(base, config, NULL, NULL);

	malloc_trim(0);
	before = mallinfo2();
	rss_before = bench_rss();
	for (uint64_t n = 0; n < messages; n++) {
		struct spool_header h;
		uint64_t start, spent;

		memset(&h, 0, sizeof(h));
		bench_fill_header(&h, n, received, false);
		start = bench_nsec();
		queue_add_header(queue, h.id, &h);
		spent = bench_nsec() - start;
		spool_header_free(&h);

		add_nsec += spent;
		if (n < tenth)
			first_nsec += spent;
		if (n >= messages - tenth)
			last_nsec += spent;
	}
	after = mallinfo2();
	rss_after = bench_rss();

	printf("messages %llu\n", (unsigned long long)messages);
	/* glibc may map large blocks, such as the timer heap and the id
	 * table of a large queue, on their own and counts them in hblkhd,
	 * not uordblks. */
	printf("heap_in_use_bytes_per_message %.1f\n",
	    (double)((after.uordblks + after.hblkhd) -
	    (before.uordblks + before.hblkhd)) / (double)messages);
	printf("heap_from_system_bytes_per_message %.1f\n",
	    (double)((after.arena + after.hblkhd) -
	    (before.arena + before.hblkhd)) / (double)messages);
	printf("rss_bytes_per_message %.1f\n",
	    (double)(rss_after - rss_before) / (double)messages);
	printf("sizeof_struct_event %zu\n", sizeof(struct event));
	printf("add_usec_mean %.3f\n", (double)add_nsec / 1e3 /
	    (double)messages);
	printf("add_usec_first_tenth %.3f\n", (double)first_nsec / 1e3 /
	    (double)tenth);
	printf("add_usec_last_tenth %.3f\n", (double)last_nsec / 1e3 /
	    (double)tenth);
	printf("add_seconds_total %.3f\n", (double)add_nsec / 1e9);

	queue_free(queue);
	event_base_free(base);
	config_free(config);
	bench_remove_dir(dir);
}

/* ---- time per scheduling decision ---- */

struct bench_item {
	struct sched_item item;
	uint64_t *started;
};

/* Stands in for the connection pool: the delivery ends as it
 * starts. */
static void
bench_item_go(void *arg)
{
	struct bench_item *b = arg;

	(*b->started)++;
	sched_item_done(&b->item, true);
}

static void
bench_choose_submit(struct scheduler *s, struct bench_item *b, uint64_t n)
{
	char site[32], domain[32];
	size_t class_index = (size_t)((n / BENCH_SITES) % BENCH_CLASSES);
	struct sched_path *p;
	char *error = NULL;

	snprintf(site, sizeof(site), "site%llu.example",
	    (unsigned long long)(n % BENCH_SITES));
	snprintf(domain, sizeof(domain), "d%llu.example",
	    (unsigned long long)(n % BENCH_DOMAINS));
	p = scheduler_choose(s, "1wXyZa-0000000001A-0000", site, "default",
	    class_index, domain, &error);
	if (p == NULL)
		fatalx("no path: %s", error);
	sched_item_submit(p, &b->item, class_index, bench_item_go, b);
}

/* Runs the loop until *started reaches target. */
static void
bench_run_loop(struct event_base *base, const uint64_t *started,
    uint64_t target)
{
	for (int loops = 0; *started < target; loops++) {
		if (loops == BENCH_LOOPS_MAX)
			fatalx("%llu of %llu items started after %d "
			    "loop runs", (unsigned long long)*started,
			    (unsigned long long)target, loops);
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
}

/* Items one at a time: choose, submit, run the loop, done. Returns
 * nanoseconds per item. */
static double
bench_single(struct scheduler *s, struct event_base *base,
    struct bench_item *items, uint64_t count)
{
	uint64_t started = 0, start = 0;

	for (uint64_t n = 0; n < count + BENCH_WARMUP; n++) {
		struct bench_item *b = &items[0];

		if (n == BENCH_WARMUP)
			start = bench_cpu_nsec();
		b->started = &started;
		bench_choose_submit(s, b, n);
		bench_run_loop(base, &started, n + 1);
	}
	return (double)(bench_cpu_nsec() - start) / (double)count;
}

/* BENCH_BATCH items chosen and submitted, then one pass of the loop
 * lets them all go. Returns nanoseconds per item. */
static double
bench_batch(struct scheduler *s, struct event_base *base,
    struct bench_item *items, uint64_t count)
{
	uint64_t started = 0, start = bench_cpu_nsec();
	uint64_t rounds = count / BENCH_BATCH > 0 ? count / BENCH_BATCH : 1;

	for (uint64_t r = 0; r < rounds; r++) {
		for (uint64_t i = 0; i < BENCH_BATCH; i++) {
			items[i].started = &started;
			bench_choose_submit(s, &items[i], r * BENCH_BATCH + i);
		}
		bench_run_loop(base, &started, (r + 1) * BENCH_BATCH);
	}
	return (double)(bench_cpu_nsec() - start) /
	    (double)(rounds * BENCH_BATCH);
}

/* scheduler_choose() alone. Returns nanoseconds per call. */
static double
bench_choose_only(struct scheduler *s, uint64_t count)
{
	uint64_t start = bench_cpu_nsec();
	char site[32];
	char *error = NULL;

	for (uint64_t n = 0; n < count; n++) {
		snprintf(site, sizeof(site), "site%llu.example",
		    (unsigned long long)(n % BENCH_SITES));
		if (scheduler_choose(s, "1wXyZa-0000000001A-0000", site,
		    "default", (size_t)(n % BENCH_CLASSES), "d1.example",
		    &error) == NULL)
			fatalx("no path: %s", error);
	}
	return (double)(bench_cpu_nsec() - start) / (double)count;
}

static void
bench_decisions(uint64_t count)
{
	struct bench_item *items = xcalloc(BENCH_BATCH, sizeof(*items));

	printf("items %llu\n", (unsigned long long)count);
	for (int shaped = 0; shaped < 2; shaped++) {
		char dir[] = "/tmp/sluice-bench-XXXXXX";
		const char *name = shaped ? "shaping" : "no_shaping";
		char *policy, *error = NULL;
		struct config *config;
		struct event_base *base;
		struct scheduler *s;
		struct policy_state *ps;

		if (mkdtemp(dir) == NULL)
			fatal("cannot create a folder in /tmp");
		policy = xasprintf("%s%s", bench_policy_sources,
		    shaped ? bench_policy_shaping : "");
		config = bench_config(dir, policy);
		free(policy);
		if ((base = event_base_new()) == NULL)
			fatalx("cannot create an event loop");
		if (policy_start(NULL, config, &error) < 0)
			fatalx("%s", error);
		s = scheduler_new(base, config);
		ps = policy_current();
		scheduler_load(s, ps);
		policy_state_unref(ps);

		printf("%s_single_usec %.3f\n", name,
		    bench_single(s, base, items, count) / 1e3);
		printf("%s_batch_usec %.3f\n", name,
		    bench_batch(s, base, items, count) / 1e3);
		printf("%s_choose_only_usec %.3f\n", name,
		    bench_choose_only(s, count) / 1e3);

		scheduler_free(s);
		policy_stop();
		event_base_free(base);
		config_free(config);
		bench_remove_dir(dir);
	}
	free(items);
}

/* ---- a spool of frozen messages ---- */

static void
bench_spool(const char *dir, uint64_t messages)
{
	static const char body[] = "Hello.\n";
	time_t received = clock_now() - 86400;
	char *input = xasprintf("%s/input", dir);
	uint64_t start = bench_nsec();

	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		fatal("cannot create %s", dir);
	if (mkdir(input, 0750) < 0 && errno != EEXIST)
		fatal("cannot create %s", input);
	for (uint64_t n = 0; n < messages; n++) {
		struct spool_header h;
		char path[512], *text, *data;
		size_t len;

		memset(&h, 0, sizeof(h));
		bench_fill_header(&h, n, received, true);
		if ((text = spool_header_format(&h, &len)) == NULL)
			fatalx("spool_header_format() rejected message %llu",
			    (unsigned long long)n);
		/* -D first, as a receiver writes it, because a message is
		 * on the spool once its -H exists. */
		data = xasprintf("%s-D\n%s", h.id, body);
		snprintf(path, sizeof(path), "%s/%s-D", input, h.id);
		bench_write_file(path, data, strlen(data));
		snprintf(path, sizeof(path), "%s/%s-H", input, h.id);
		bench_write_file(path, text, len);
		free(data);
		free(text);
		spool_header_free(&h);
	}
	printf("spool_messages %llu\n", (unsigned long long)messages);
	printf("spool_write_seconds %.3f\n",
	    (double)(bench_nsec() - start) / 1e9);
	free(input);
}

static void
bench_usage(void)
{
	fprintf(stderr, "usage: scheduler memory [MESSAGES]\n"
	    "       scheduler decisions [ITEMS]\n"
	    "       scheduler spool DIRECTORY MESSAGES\n");
	exit(2);
}

static uint64_t
bench_count(const char *value)
{
	unsigned long long n;

	if (parse_uint(value, BENCH_MESSAGES_MAX, &n) != 0 || n == 0) {
		fprintf(stderr, "scheduler: the count must be a number from 1 "
		    "to %llu, not \"%s\"\n", BENCH_MESSAGES_MAX, value);
		exit(2);
	}
	return n;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		bench_usage();
	if (strcmp(argv[1], "memory") == 0 && argc <= 3)
		bench_memory(argc == 3 ? bench_count(argv[2]) : 100000);
	else if (strcmp(argv[1], "decisions") == 0 && argc <= 3)
		bench_decisions(argc == 3 ? bench_count(argv[2]) : 400000);
	else if (strcmp(argv[1], "spool") == 0 && argc == 4)
		bench_spool(argv[2], bench_count(argv[3]));
	else
		bench_usage();
	return 0;
}
