/*
 * spool_load.c - load program for the spool store's group commit.
 *
 * Runs --writers concurrent receptions on one event loop, as the SMTP
 * server does: each writer creates a message, streams its body, queues
 * the commit and starts the next message when the commit callback
 * reports. With many commits in flight, the worker makes several of them
 * durable per round. At the end it prints one "name value" line per
 * figure: messages, failures, rounds, messages_per_round, max_batch,
 * sync_calls, sync_calls_per_message, seconds, commits_per_second.
 * --verify then opens the spool again, runs the start-up scan and prints
 * "scanned N" and "broken N".
 *
 * Usage: spool_load [--writers N] [--messages N] [--body-bytes N]
 *                   [--split] [--no-syncfs] [--verify] DIRECTORY
 * --messages is per writer. --no-syncfs makes the store sync each file
 * on its own, as it does on Linux before 5.8, for comparison. DIRECTORY is created if missing and should
 * be empty. Exit status 0 when every commit succeeded (and, with
 * --verify, every message was found intact), else 1; 2 for bad usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "msgid.h"
#include "spool_header.h"
#include "spool_store.h"
#include "util.h"

#define WRITERS_MAX		1000
#define MESSAGES_MAX		1000000
#define BODY_BYTES_MAX		(64 * 1024 * 1024)

struct load;

struct writer {
	struct load *load;
	unsigned index;
	unsigned remaining;
	char id[MSGID_SIZE];
};

struct load {
	struct event_base *base;
	struct spool_store *store;
	unsigned writers_running;
	size_t body_bytes;
	char *body;
	uint64_t committed;
	uint64_t failures;
};

static void writer_next(struct writer *w);

static void
usage(void)
{
	fprintf(stderr, "usage: spool_load [--writers N] [--messages N] "
	    "[--body-bytes N] [--split] [--no-syncfs] [--verify] "
	    "DIRECTORY\n");
	exit(2);
}

static unsigned long long
number_option(const char *name, const char *value, unsigned long long max)
{
	unsigned long long n;

	if (parse_uint(value, max, &n) != 0 || n == 0) {
		fprintf(stderr, "spool_load: --%s must be a number from 1 to "
		    "%llu, not \"%s\"\n", name, max, value);
		exit(2);
	}
	return n;
}

/* Formats the -H file of a one-recipient message; caller frees. */
static char *
make_header(const char *id, unsigned writer, size_t body_bytes, size_t *len)
{
	struct spool_header h;
	struct timeval now;
	char *address, *to, *text;
	static const char from[] = "From: load@example.org\n";
	static const char subject[] = "Subject: spool load\n";

	memset(&h, 0, sizeof(h));
	clock_now_tv(&now);
	strlcpy_s(h.id, id, sizeof(h.id));
	h.login = xstrdup("sluice");
	h.uid = getuid();
	h.gid = getgid();
	h.sender = xstrdup("load@example.org");
	h.received_time = now.tv_sec;
	h.received_time_usec = (int)now.tv_usec;
	h.received_protocol = xstrdup("local");
	h.body_linecount = (int)(body_bytes / 64 + (body_bytes % 64 != 0));
	h.max_received_linelength = 63;
	address = xasprintf("writer%u@example.net", writer);
	spool_header_add_recipient(&h, address);
	to = xasprintf("To: %s\n", address);
	spool_header_add_field(&h, SPOOL_FIELD_FROM, from, strlen(from));
	spool_header_add_field(&h, SPOOL_FIELD_TO, to, strlen(to));
	spool_header_add_field(&h, SPOOL_FIELD_OTHER, subject, strlen(subject));

	text = spool_header_format(&h, len);
	if (text == NULL)
		fatalx("spool_header_format rejected the load message's header");
	spool_header_free(&h);
	free(to);
	free(address);
	return text;
}

static void
writer_done_cb(void *arg, int result, const char *error)
{
	struct writer *w = arg;

	if (result == 0) {
		w->load->committed++;
	} else {
		w->load->failures++;
		fprintf(stderr, "spool_load: commit of %s failed: %s\n", w->id,
		    error);
	}
	writer_next(w);
}

/* Starts the writer's next message, or stops it when it has no more. */
static void
writer_next(struct writer *w)
{
	struct load *load = w->load;
	struct spool_data *data;
	char *error = NULL, *header;
	size_t len;

	if (w->remaining == 0) {
		if (--load->writers_running == 0)
			event_base_loopbreak(load->base);
		return;
	}
	w->remaining--;

	msgid_new(MSGID_FORMAT_CURRENT, w->id);
	data = spool_store_data_create(load->store, w->id, &error);
	if (data == NULL)
		fatalx("%s", error);
	if (spool_data_write(data, load->body, load->body_bytes, &error) != 0)
		fatalx("%s", error);
	header = make_header(w->id, w->index, load->body_bytes, &len);
	spool_store_commit(load->store, data, header, len, writer_done_cb, w);
	free(header);
}

/* Body text: lines of 63 characters and a newline. */
static char *
make_body(size_t bytes)
{
	char *body = xmalloc(bytes);

	for (size_t i = 0; i < bytes; i++)
		body[i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);
	return body;
}

static void
scan_count_cb(void *arg, const char *id, struct spool_header *header)
{
	size_t *count = arg;

	(*count)++;
	spool_header_free(header);
	free(header);
}

/* Opens the spool again and scans it, as the daemon does at start-up.
 * Returns 0 if it found want messages and nothing broken. */
static int
verify(const char *directory, bool split, uint64_t want)
{
	struct event_base *base = event_base_new();
	struct spool_store *store;
	struct spool_scan_result result;
	char *error = NULL;
	size_t count = 0;
	int rc;

	store = spool_store_new(base, directory, split, NULL, &error);
	if (store == NULL)
		fatalx("%s", error);
	if (spool_store_scan(store, scan_count_cb, &count, &result, &error) != 0)
		fatalx("%s", error);
	printf("scanned %zu\nbroken %zu\n", result.messages, result.broken);
	rc = result.messages == want && count == want && result.broken == 0 ?
	    0 : -1;
	spool_store_free(store);
	event_base_free(base);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "writers", required_argument, NULL, 'w' },
		{ "messages", required_argument, NULL, 'm' },
		{ "body-bytes", required_argument, NULL, 'b' },
		{ "split", no_argument, NULL, 's' },
		{ "no-syncfs", no_argument, NULL, 'n' },
		{ "verify", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct load load;
	struct writer *writers;
	struct spool_store_stats stats;
	struct spool_backend backend = *spool_backend_posix();
	unsigned writer_count = 20, per_writer = 50;
	bool split = false, do_verify = false;
	char *error = NULL;
	uint64_t start, elapsed;
	double seconds;
	int opt, rc = 0;

	memset(&load, 0, sizeof(load));
	load.body_bytes = 2048;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'w':
			writer_count = (unsigned)number_option("writers", optarg,
			    WRITERS_MAX);
			break;
		case 'm':
			per_writer = (unsigned)number_option("messages", optarg,
			    MESSAGES_MAX);
			break;
		case 'b':
			load.body_bytes = (size_t)number_option("body-bytes",
			    optarg, BODY_BYTES_MAX);
			break;
		case 's':
			split = true;
			break;
		case 'n':
			backend.syncfs = NULL;
			break;
		case 'v':
			do_verify = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();

	load.base = event_base_new();
	if (load.base == NULL)
		fatalx("cannot create a libevent base");
	load.store = spool_store_new(load.base, argv[optind], split, &backend,
	    &error);
	if (load.store == NULL)
		fatalx("%s", error);
	load.body = make_body(load.body_bytes);

	writers = xcalloc(writer_count, sizeof(*writers));
	load.writers_running = writer_count;
	start = clock_monotonic_usec();
	for (unsigned i = 0; i < writer_count; i++) {
		writers[i].load = &load;
		writers[i].index = i;
		writers[i].remaining = per_writer;
		writer_next(&writers[i]);
	}
	event_base_dispatch(load.base);
	elapsed = clock_monotonic_usec() - start;

	spool_store_stats(load.store, &stats);
	seconds = (double)elapsed / 1e6;
	printf("messages %llu\n", (unsigned long long)load.committed);
	printf("failures %llu\n", (unsigned long long)load.failures);
	printf("rounds %llu\n", (unsigned long long)stats.commit_rounds);
	printf("messages_per_round %.2f\n", stats.commit_rounds > 0 ?
	    (double)stats.messages_committed / (double)stats.commit_rounds : 0);
	printf("max_batch %llu\n", (unsigned long long)stats.max_batch);
	printf("sync_calls %llu\n", (unsigned long long)stats.sync_calls);
	printf("sync_calls_per_message %.3f\n", load.committed > 0 ?
	    (double)stats.sync_calls / (double)load.committed : 0);
	printf("seconds %.3f\n", seconds);
	printf("commits_per_second %.0f\n", seconds > 0 ?
	    (double)load.committed / seconds : 0);
	fflush(stdout);

	spool_store_free(load.store);
	event_base_free(load.base);
	if (load.failures > 0)
		rc = 1;
	if (do_verify && verify(argv[optind], split, load.committed) != 0)
		rc = 1;
	free(writers);
	free(load.body);
	return rc;
}
