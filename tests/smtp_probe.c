/*
 * smtp_probe.c - delivers one spooled message to one SMTP server with
 * sluice's SMTP client and prints the outcome, for the end-to-end tests
 * (tests/e2e/test_smtp_client.py).
 *
 *   smtp_probe [--host NAME] [--source IP] [--helo NAME] [--timeout SEC]
 *              INPUT_DIR ID IP PORT [RECIPIENT...]
 *
 * Reads INPUT_DIR/ID-H and INPUT_DIR/ID-D. Without RECIPIENT arguments
 * it delivers to every recipient of the -H file not yet delivered, with
 * their DSN data (NOTIFY, ORCPT) for a server that offers DSN.
 * --timeout sets every phase's timeout, QUIT's included. Output:
 *
 *   host NAME [IP]:PORT esmtp=yes tls=no
 *   rcpt ADDRESS OUTCOME code=N phase=P kind=K error=N defer=N
 *   after COMMAND
 *   reply TEXT                  (lines joined by "\n")
 *   message TEXT
 *   summary delivered=N deferred=N failed=N
 *
 * where the after, reply and message lines follow the rcpt line they
 * belong to and appear only when set.
 *
 * Exit status: 0 when the delivery ran (whatever its outcome), 64 for a
 * usage or setup error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "smtp_client.h"
#include "spool_header.h"
#include "spool_store.h"
#include "util.h"

struct probe {
	struct event_base *base;
	bool done;
};

/* Prints text with each newline shown as "\n", on one line. */
static void
print_escaped(const char *label, const char *text)
{
	printf("%s ", label);
	for (const char *p = text; *p != '\0'; p++) {
		if (*p == '\n')
			fputs("\\n", stdout);
		else
			putchar(*p);
	}
	putchar('\n');
}

static void
result_cb(void *arg, struct smtp_result *result)
{
	struct probe *probe = arg;

	printf("host %s [%s]:%d esmtp=%s tls=%s\n", result->host_name,
	    result->ip, result->port, result->esmtp ? "yes" : "no",
	    result->tls ? "yes" : "no");
	for (size_t i = 0; i < result->rcpt_count; i++) {
		const struct smtp_rcpt_result *r = &result->rcpts[i];

		printf("rcpt %s %s code=%d phase=%s kind=%s error=%d "
		    "defer=%d\n", r->address, smtp_outcome_name(r->outcome),
		    r->code, smtp_phase_name(r->phase),
		    smtp_error_kind_name(r->kind), r->error,
		    smtp_rcpt_defer_code(r));
		if (r->after != NULL)
			print_escaped("after", r->after);
		if (r->reply != NULL)
			print_escaped("reply", r->reply);
		if (r->message != NULL)
			print_escaped("message", r->message);
	}
	printf("summary delivered=%zu deferred=%zu failed=%zu\n",
	    result->delivered, result->deferred, result->failed);
	smtp_result_free(result);
	probe->done = true;
	event_base_loopbreak(probe->base);
}

static void
usage(void)
{
	fprintf(stderr, "usage: smtp_probe [--host NAME] [--source IP] "
	    "[--helo NAME] [--timeout SEC] INPUT_DIR ID IP PORT "
	    "[RECIPIENT...]\n");
	exit(64);
}

/* Reports a setup error (message is never freed) and exits. */
static void SLUICE_NORETURN
die(char *message)
{
	fprintf(stderr, "smtp_probe: %s\n", message);
	exit(64);
}

/* Reads the whole -H file; it is at most SPOOL_HEADER_FILE_MAX bytes. */
static char *
read_header_file(const char *path, size_t *len)
{
	struct stat st;
	char *data;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) != 0)
		die(xasprintf("cannot open %s: %s", path, strerror(errno)));
	if (st.st_size > SPOOL_HEADER_FILE_MAX)
		die(xasprintf("%s is too large", path));
	data = xmalloc((size_t)st.st_size + 1);
	*len = 0;
	while (*len < (size_t)st.st_size) {
		ssize_t got = read(fd, data + *len, (size_t)st.st_size - *len);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			die(xasprintf("cannot read %s: %s", path, got < 0 ?
			    strerror(errno) : "the file shrank"));
		*len += (size_t)got;
	}
	close(fd);
	return data;
}

int
main(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "host", required_argument, NULL, 'n' },
		{ "source", required_argument, NULL, 's' },
		{ "helo", required_argument, NULL, 'e' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct smtp_client_target target = { .helo_name = "probe.test" };
	struct smtp_client_options options;
	struct smtp_client_message message;
	struct spool_header header;
	struct probe probe = { NULL, false };
	const char **recipients;
	const struct spool_recipient **dsn;
	size_t count = 0, len;
	unsigned long long value;
	char *path, *data, *error = NULL;
	int c, fd;

	smtp_client_options_init(&options);
	while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		switch (c) {
		case 'n':
			target.host_name = optarg;
			break;
		case 's':
			target.source_ip = optarg;
			break;
		case 'e':
			target.helo_name = optarg;
			break;
		case 't':
			if (parse_uint(optarg, 3600, &value) != 0)
				die(xasprintf("--timeout must be 0 to 3600 "
				    "seconds, got \"%s\"", optarg));
			options.connect_timeout_usec = value * 1000000;
			options.command_timeout_usec = value * 1000000;
			options.data_timeout_usec = value * 1000000;
			options.final_timeout_usec = value * 1000000;
			options.quit_timeout_usec = value * 1000000;
			break;
		default:
			usage();
		}
	}
	if (argc - optind < 4)
		usage();
	target.ip = argv[optind + 2];
	if (parse_uint(argv[optind + 3], 65535, &value) != 0)
		die(xasprintf("invalid port \"%s\"", argv[optind + 3]));
	target.port = (int)value;

	path = xasprintf("%s/%s-H", argv[optind], argv[optind + 1]);
	data = read_header_file(path, &len);
	if (spool_header_parse(data, len, path, &header, &error) != 0)
		die(error);
	free(data);
	free(path);

	path = xasprintf("%s/%s-D", argv[optind], argv[optind + 1]);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(xasprintf("cannot open %s: %s", path, strerror(errno)));
	free(path);

	recipients = xcalloc(header.recipients_count + (size_t)argc,
	    sizeof(*recipients));
	dsn = xcalloc(header.recipients_count + 1, sizeof(*dsn));
	for (int i = optind + 4; i < argc; i++)
		recipients[count++] = argv[i];
	if (count == 0) {
		for (size_t i = 0; i < header.recipients_count; i++) {
			if (spool_header_is_delivered(&header,
			    header.recipients[i].address))
				continue;
			dsn[count] = &header.recipients[i];
			recipients[count++] = header.recipients[i].address;
		}
	}

	message.header = &header;
	message.data_fd = fd;
	message.recipients = recipients;
	message.recipient_count = count;
	message.dsn = dsn;

	probe.base = event_base_new();
	if (probe.base == NULL)
		fatalx("cannot create an event base");
	if (smtp_client_start(probe.base, &target, &message, &options,
	    result_cb, &probe, &error) == NULL)
		die(error);
	event_base_dispatch(probe.base);
	if (!probe.done)
		die(xstrdup("the event loop ended before the delivery"));

	event_base_free(probe.base);
	free(recipients);
	free(dsn);
	close(fd);
	spool_header_free(&header);
	return 0;
}
