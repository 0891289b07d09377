/*
 * test_log.c - log selectors, the line prefix and the log files:
 * creation, rotation, datestamps, write failures and the panic log.
 *
 * Each test that writes files gets a fresh temporary directory as
 * spool_directory and configures the logs with a struct config filled
 * by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "util.h"

#define ID	"1tt1Jd-00000000CXd-1jGj"
/* The end of the error for an unknown selector name. */
#define SUGGEST	"; use the names of Exim's log selectors, such as +subject"

struct fixture {
	char dir[64];
	char cwd[4096];
	struct config config;
};

/* Reads a whole file; returns NULL if it cannot be read. Caller frees. */
static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text;
	long len;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = xmalloc((size_t)len + 1);
	if (fread(text, 1, (size_t)len, f) != (size_t)len)
		len = 0;
	text[len] = '\0';
	fclose(f);
	return text;
}

static char *
fixture_path(const struct fixture *fx, const char *name)
{
	return xasprintf("%s/%s", fx->dir, name);
}

/* Reads a file of the fixture; fails the test if it is missing. */
static char *
read_fixture_file(const struct fixture *fx, const char *name)
{
	char *path = fixture_path(fx, name);
	char *text = read_file(path);

	if (text == NULL)
		fail_msg("cannot read %s: %s", path, strerror(errno));
	free(path);
	return text;
}

static int
count_lines(const char *text)
{
	int lines = 0;

	for (; *text != '\0'; text++)
		lines += *text == '\n';
	return lines;
}

/* True if line starts with "YYYY-MM-DD HH:MM:SS ". */
static bool
has_timestamp(const char *line)
{
	static const char shape[] = "dddd-dd-dd dd:dd:dd ";

	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == 'd' ? line[i] < '0' || line[i] > '9' :
		    line[i] != shape[i])
			return false;
	}
	return true;
}

static void
configure(struct fixture *fx, const char *log_file_path,
    const char *selectors)
{
	char *error = NULL;

	fx->config.log_file_path = (char *)log_file_path;
	fx->config.log_selector = (char *)selectors;
	if (log_configure(&fx->config, &error) != 0)
		fail_msg("log_configure: %s", error);
}

static int
setup(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));

	strlcpy_s(fx->dir, "/tmp/sluice-test-log-XXXXXX", sizeof(fx->dir));
	if (mkdtemp(fx->dir) == NULL || getcwd(fx->cwd, sizeof(fx->cwd)) ==
	    NULL)
		return -1;
	fx->config.spool_directory = fx->dir;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char *command = xasprintf("rm -rf '%s'", fx->dir);
	int rc;

	log_close();
	if (chdir(fx->cwd) != 0)
		return -1;
	rc = system(command);
	free(command);
	free(fx);
	return rc == 0 ? 0 : -1;
}

/* Runs fn with stderr sent to a file and returns what it wrote. */
static char *
capture_stderr(void (*fn)(void *), void *arg)
{
	char path[] = "/tmp/sluice-test-stderr-XXXXXX";
	int fd = mkstemp(path);
	int saved = dup(STDERR_FILENO);
	char *text;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	fn(arg);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	text = read_file(path);
	unlink(path);
	assert_non_null(text);
	return text;
}

/* Selectors. */

static void
selector_defaults(void **state)
{
	char *error = NULL;

	(void)state;
	assert_int_equal(log_set_selector("", &error), 0);
	assert_true(log_selected(LOG_SEL_TLS_CIPHER));
	assert_true(log_selected(LOG_SEL_TLS_CERTIFICATE_VERIFIED));
	assert_true(log_selected(LOG_SEL_SMTP_CONFIRMATION));
	assert_true(log_selected(LOG_SEL_MSG_ID));
	assert_true(log_selected(LOG_SEL_QUEUE_RUN));
	assert_true(log_selected(LOG_SEL_RETRY_DEFER));
	assert_true(log_selected(LOG_SEL_CONNECTION_REJECT));
	assert_true(log_selected(LOG_SEL_SIZE_REJECT));
	assert_true(log_selected(LOG_SEL_SKIP_DELIVERY));
	assert_false(log_selected(LOG_SEL_PID));
	assert_false(log_selected(LOG_SEL_SUBJECT));
	assert_false(log_selected(LOG_SEL_SMTP_CONNECTION));
	assert_false(log_selected(LOG_SEL_QUEUE_TIME));
	assert_false(log_selected(LOG_SEL_DELIVER_TIME));
	assert_false(log_selected(LOG_SEL_INCOMING_PORT));
	assert_int_equal(log_set_selector(NULL, &error), 0);
	assert_true(log_selected(LOG_SEL_TLS_CIPHER));
}

static void
selector_changes(void **state)
{
	char *error = NULL;

	(void)state;
	assert_int_equal(log_set_selector(" +pid -tls_cipher\t+subject ",
	    &error), 0);
	assert_true(log_selected(LOG_SEL_PID));
	assert_true(log_selected(LOG_SEL_SUBJECT));
	assert_false(log_selected(LOG_SEL_TLS_CIPHER));
	assert_true(log_selected(LOG_SEL_MSG_ID));

	/* Exim allows items without white space between them. */
	assert_int_equal(log_set_selector("+pid+queue_time-msg_id", &error),
	    0);
	assert_true(log_selected(LOG_SEL_PID));
	assert_true(log_selected(LOG_SEL_QUEUE_TIME));
	assert_false(log_selected(LOG_SEL_MSG_ID));

	assert_int_equal(log_set_selector("+all", &error), 0);
	for (int sel = 0; sel < LOG_SEL_COUNT; sel++)
		assert_true(log_selected((enum log_sel)sel));
	assert_int_equal(log_set_selector("-all +pid", &error), 0);
	for (int sel = 0; sel < LOG_SEL_COUNT; sel++)
		assert_int_equal(log_selected((enum log_sel)sel),
		    sel == LOG_SEL_PID);
	assert_int_equal(log_set_selector("+all -pid", &error), 0);
	assert_false(log_selected(LOG_SEL_PID));
	assert_true(log_selected(LOG_SEL_SUBJECT));

	assert_int_equal(log_set_selector("+rejected_headers", &error), 0);
	assert_true(log_selected(LOG_SEL_REJECTED_HEADER));
}

static void
selector_errors(void **state)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{ "pid", "log_selector: \"pid\" must start with + or -" },
		{ "+pid subject", "log_selector: \"subject\" must start with "
		    "+ or -" },
		{ "+pid,+subject", "log_selector: \",+subject\" must start "
		    "with + or -" },
		{ "+nosuch", "log_selector: unknown selector \"nosuch\"" SUGGEST },
		{ "+", "log_selector: + must be followed by a selector name" },
		{ "- pid", "log_selector: - must be followed by a selector "
		    "name" },
		{ "+PID", "log_selector: unknown selector \"PID\"" SUGGEST },
		{ "+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		    "log_selector: unknown selector "
		    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"" SUGGEST },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *error = NULL;

		assert_int_equal(log_set_selector("+pid", &error), 0);
		if (log_set_selector(cases[i].text, &error) != -1)
			fail_msg("\"%s\" was accepted", cases[i].text);
		assert_non_null(error);
		if (strcmp(error, cases[i].want) != 0)
			fail_msg("\"%s\": got error \"%s\", want \"%s\"",
			    cases[i].text, error, cases[i].want);
		/* A failed setting leaves the old selectors in place. */
		assert_true(log_selected(LOG_SEL_PID));
		free(error);
	}
}

/* The prefix. */

static void
prefix_forms(void **state)
{
	struct timeval tv = { .tv_sec = 1741944413, .tv_usec = 412345 };
	char buf[LOG_PREFIX_MAX], want[LOG_PREFIX_MAX];
	char *error = NULL;

	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	assert_int_equal(log_set_selector("", &error), 0);
	log_format_prefix(buf, sizeof(buf), &tv, NULL);
	assert_string_equal(buf, "2025-03-14 09:26:53 ");
	log_format_prefix(buf, sizeof(buf), &tv, ID);
	assert_string_equal(buf, "2025-03-14 09:26:53 " ID " ");

	assert_int_equal(log_set_selector("+millisec +pid", &error), 0);
	snprintf(want, sizeof(want), "2025-03-14 09:26:53.412 [%ld] " ID " ",
	    (long)getpid());
	log_format_prefix(buf, sizeof(buf), &tv, ID);
	assert_string_equal(buf, want);

	/* Local time, not UTC. */
	assert_int_equal(log_set_selector("", &error), 0);
	setenv("TZ", "EST5", 1);
	tzset();
	log_format_prefix(buf, sizeof(buf), &tv, NULL);
	assert_string_equal(buf, "2025-03-14 04:26:53 ");
	setenv("TZ", "UTC", 1);
	tzset();

	/* Whatever comes as an id, the prefix stays bounded. */
	log_format_prefix(buf, sizeof(buf), &tv,
	    "a-very-long-string-that-is-not-an-id-at-all");
	assert_string_equal(buf, "2025-03-14 09:26:53 "
	    "a-very-long-string-that ");
}

/* Files. */

static void
write_unconfigured_fn(void *arg)
{
	(void)arg;
	log_write(LOG_MAIN, ID, "before configure %d", 1);
}

/* Runs first: until log_configure(), lines go to stderr. */
static void
unconfigured_goes_to_stderr(void **state)
{
	char *text;

	(void)state;
	text = capture_stderr(write_unconfigured_fn, NULL);
	assert_true(has_timestamp(text));
	assert_non_null(strstr(text, " " ID " before configure 1\n"));
	free(text);
}

static void
default_files_created(void **state)
{
	struct fixture *fx = *state;
	char *main_text, *reject_text, *path;
	struct stat st;

	configure(fx, NULL, NULL);
	log_write(LOG_MAIN, ID, "<= a@example.org S=%d", 12);
	log_write(LOG_MAIN | LOG_REJECT, NULL, "rejected RCPT\nEnvelope-from: "
	    "<a@example.org>\nP Received: x");

	main_text = read_fixture_file(fx, "log/mainlog");
	reject_text = read_fixture_file(fx, "log/rejectlog");
	assert_int_equal(count_lines(main_text), 2);
	assert_true(has_timestamp(main_text));
	assert_memory_equal(main_text + 20, ID " <= a@example.org S=12\n",
	    strlen(ID " <= a@example.org S=12\n"));
	/* The main log gets only the first line of a multi-line entry. */
	assert_string_equal(strchr(main_text, '\n') + 1 + 20,
	    "rejected RCPT\n");
	assert_int_equal(count_lines(reject_text), 3);
	assert_string_equal(reject_text + 20, "rejected RCPT\nEnvelope-from: "
	    "<a@example.org>\nP Received: x\n");

	path = fixture_path(fx, "log/mainlog");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	free(path);
	path = fixture_path(fx, "log");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0750);
	free(path);
	path = fixture_path(fx, "log/paniclog");
	assert_int_equal(access(path, F_OK), -1);	/* never written */
	free(path);
	free(main_text);
	free(reject_text);
}

/* Writes the name the main log has today under a/b/%slog-%D%%. */
static void
dated_name(char *buf, size_t size)
{
	time_t now = clock_now();
	struct tm tm;

	localtime_r(&now, &tm);
	snprintf(buf, size, "a/b/mainlog-%04d%02d%02d%%", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday);
}

static void
explicit_path_and_datestamps(void **state)
{
	struct fixture *fx = *state;
	char *template = xasprintf("%s/a/b/%%slog-%%D%%%%", fx->dir);
	char before[64], after[64];
	char *text, *path;

	configure(fx, template, NULL);
	dated_name(before, sizeof(before));
	log_write(LOG_MAIN | LOG_PANIC, NULL, "dated");
	dated_name(after, sizeof(after));

	/* The date may change between the two names, at midnight. */
	path = fixture_path(fx, before);
	text = read_file(path);
	free(path);
	if (text == NULL)
		text = read_fixture_file(fx, after);
	assert_string_equal(text + 20, "dated\n");
	free(text);
	/* The panic log is never dated. */
	text = read_fixture_file(fx, "a/b/paniclog-%");
	assert_string_equal(text + 20, "dated\n");
	free(text);
	free(template);
}

static void
relative_path_made_absolute(void **state)
{
	struct fixture *fx = *state;
	char *text;

	assert_int_equal(chdir(fx->dir), 0);
	configure(fx, "./rel/%slog", NULL);
	/* A daemon changes to / after start-up. */
	assert_int_equal(chdir("/"), 0);
	log_write(LOG_MAIN, NULL, "relative");
	text = read_fixture_file(fx, "rel/mainlog");
	assert_string_equal(text + 20, "relative\n");
	free(text);
}

static void
rotation_reopens(void **state)
{
	struct fixture *fx = *state;
	char *current = fixture_path(fx, "log/mainlog");
	char *rotated = fixture_path(fx, "log/mainlog.1");
	char *text;
	int fd;

	configure(fx, NULL, NULL);
	log_write(LOG_MAIN, NULL, "one");
	assert_int_equal(rename(current, rotated), 0);
	log_write(LOG_MAIN, NULL, "two");

	text = read_fixture_file(fx, "log/mainlog.1");
	assert_string_equal(text + 20, "one\n");
	free(text);
	text = read_fixture_file(fx, "log/mainlog");
	assert_string_equal(text + 20, "two\n");
	free(text);

	/* Removed outright (logrotate without delaycompress, by hand). */
	assert_int_equal(unlink(current), 0);
	log_write(LOG_MAIN, NULL, "three");
	text = read_fixture_file(fx, "log/mainlog");
	assert_string_equal(text + 20, "three\n");
	free(text);

	/* logrotate's "create": renamed, and a new empty file put in its
	 * place before sluice writes again. Only the inode differs. */
	assert_int_equal(rename(current, rotated), 0);
	fd = open(current, O_WRONLY | O_CREAT | O_EXCL, 0640);
	assert_true(fd >= 0);
	close(fd);
	log_write(LOG_MAIN, NULL, "after create");
	text = read_fixture_file(fx, "log/mainlog");
	assert_string_equal(text + 20, "after create\n");
	free(text);
	text = read_fixture_file(fx, "log/mainlog.1");
	assert_string_equal(text + 20, "three\n");
	free(text);

	/* log_close() only closes; the next line reopens. */
	log_close();
	log_write(LOG_MAIN, NULL, "four");
	text = read_fixture_file(fx, "log/mainlog");
	assert_int_equal(count_lines(text), 2);
	free(text);
	free(current);
	free(rotated);
}

static void
write_three_lines_fn(void *arg)
{
	(void)arg;
	for (int i = 0; i < 3; i++)
		log_write(LOG_MAIN, NULL, "lost %d", i);
}

static void
write_failures_counted(void **state)
{
	struct fixture *fx = *state;
	char *blocker = fixture_path(fx, "blocked");
	char *template = xasprintf("%s/%%slog", blocker);
	uint64_t before = log_write_failures();
	char *err, *text;
	int fd;

	/* A regular file where the log directory should be. */
	fd = open(blocker, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	configure(fx, template, NULL);

	err = capture_stderr(write_three_lines_fn, NULL);
	/* Three main lines and the panic line about them. */
	assert_int_equal(log_write_failures() - before, 4);
	/* Reported once per file, not once per line. */
	assert_int_equal(count_lines(err), 2);
	assert_non_null(strstr(err, "cannot write to log file "));
	assert_non_null(strstr(err, "blocked/mainlog: Not a directory"));
	free(err);

	/* Once writing works again, the log reports the lost lines. */
	assert_int_equal(unlink(blocker), 0);
	log_write(LOG_MAIN, NULL, "back");
	text = read_fixture_file(fx, "blocked/mainlog");
	assert_int_equal(count_lines(text), 2);
	assert_non_null(strstr(text, "3 log lines could not be written to "
	    "this file (last error: Not a directory)\n"));
	assert_non_null(strstr(text, " back\n"));
	free(text);
	free(template);
	free(blocker);
}

static void
path_errors(void **state)
{
	struct fixture *fx = *state;
	static const struct {
		const char *path;
		const char *want;	/* start of the error */
	} cases[] = {
		{ "/var/log/sluice/mainlog", "log_file_path: "
		    "\"/var/log/sluice/mainlog\" must contain %s exactly once" },
		{ "/x/%s/%slog", "log_file_path: \"/x/%s/%slog\" must contain "
		    "%s exactly once" },
		{ "/x/%slog-%Y", "log_file_path: \"/x/%slog-%Y\" contains %Y" },
		{ "/x/%slog%", "log_file_path: \"/x/%slog%\" contains % " },
		{ "/a/%slog : /b/%slog", "log_file_path names two file paths" },
		{ "syslog : /a/%slog : syslog", "log_file_path has more than "
		    "two items" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *error = NULL;

		fx->config.log_file_path = (char *)cases[i].path;
		if (log_configure(&fx->config, &error) != -1)
			fail_msg("\"%s\" was accepted", cases[i].path);
		if (strncmp(error, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("\"%s\": got error \"%s\", want \"%s...\"",
			    cases[i].path, error, cases[i].want);
		free(error);
	}
}

static void
bad_selector_rejected_by_configure(void **state)
{
	struct fixture *fx = *state;
	char *error = NULL;

	fx->config.log_selector = "+pid +nosuch";
	assert_int_equal(log_configure(&fx->config, &error), -1);
	assert_string_equal(error, "log_selector: unknown selector \"nosuch\""
	    SUGGEST);
	free(error);
}

static void
syslog_items_accepted(void **state)
{
	struct fixture *fx = *state;
	char *text;

	/* An empty item is the default file, as in Exim. Nothing is
	 * written here while syslog is on. */
	configure(fx, ": syslog", NULL);
	configure(fx, "syslog", NULL);
	configure(fx, "", NULL);
	log_write(LOG_MAIN, NULL, "default again");
	text = read_fixture_file(fx, "log/mainlog");
	assert_string_equal(text + 20, "default again\n");
	free(text);
}

static void
long_text_cut_with_mark(void **state)
{
	struct fixture *fx = *state;
	char *big = xmalloc(3 * LOG_TEXT_MAX);
	char *text;
	size_t len;

	memset(big, 'x', 3 * LOG_TEXT_MAX - 1);
	big[3 * LOG_TEXT_MAX - 1] = '\0';
	configure(fx, NULL, NULL);
	log_write(LOG_MAIN, NULL, "%s", big);
	log_write_text(LOG_MAIN, NULL, big);
	text = read_fixture_file(fx, "log/mainlog");
	assert_int_equal(count_lines(text), 2);
	len = strcspn(text, "\n");
	assert_int_equal(len, 20 + LOG_TEXT_MAX);
	assert_memory_equal(text + len - strlen(LOG_TRUNCATED_MARK),
	    LOG_TRUNCATED_MARK, strlen(LOG_TRUNCATED_MARK));
	assert_int_equal(strcspn(text + len + 1, "\n"), 20 + LOG_TEXT_MAX);
	free(text);
	free(big);
}

#define THREADS 4
#define THREAD_LINES 500

static void *
thread_write_lines(void *arg)
{
	long n = (long)(intptr_t)arg;

	for (int i = 0; i < THREAD_LINES; i++)
		log_write(LOG_MAIN, ID, "thread %ld line %d end", n, i);
	return NULL;
}

static void
threads_write_whole_lines(void **state)
{
	struct fixture *fx = *state;
	pthread_t threads[THREADS];
	char *text, *line, *next;
	int lines = 0;

	configure(fx, NULL, NULL);
	for (long t = 0; t < THREADS; t++)
		assert_int_equal(pthread_create(&threads[t], NULL,
		    thread_write_lines, (void *)(intptr_t)t), 0);
	for (int t = 0; t < THREADS; t++)
		assert_int_equal(pthread_join(threads[t], NULL), 0);

	text = read_fixture_file(fx, "log/mainlog");
	for (line = text; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		assert_non_null(next);
		*next++ = '\0';
		if (!has_timestamp(line) ||
		    strncmp(line + 20, ID " thread ", strlen(ID) + 8) != 0 ||
		    strcmp(line + strlen(line) - 4, " end") != 0)
			fail_msg("broken line \"%s\"", line);
		lines++;
	}
	assert_int_equal(lines, THREADS * THREAD_LINES);
	free(text);
}

static void
panic_early_writes_panic_log(void **state)
{
	struct fixture *fx = *state;
	char *text;

	/* A bad log_file_path falls back to the default path. */
	fx->config.log_file_path = "/nowhere/without-percent-s";
	log_panic_early(&fx->config, "sluice.conf:3: unknown option\nsecond");
	text = read_fixture_file(fx, "log/paniclog");
	assert_true(has_timestamp(text));
	assert_string_equal(text + 20, "sluice.conf:3: unknown option\n");
	free(text);
}

static void
panic_early_without_config_fn(void *arg)
{
	(void)arg;
	log_panic_early(NULL, "no configuration at all");
}

static void
panic_early_without_config(void **state)
{
	char *err;

	(void)state;
	err = capture_stderr(panic_early_without_config_fn, NULL);
	assert_non_null(strstr(err, "no configuration at all"));
	free(err);
}

#define FILE_TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(unconfigured_goes_to_stderr),
		cmocka_unit_test(selector_defaults),
		cmocka_unit_test(selector_changes),
		cmocka_unit_test(selector_errors),
		cmocka_unit_test(prefix_forms),
		FILE_TEST(default_files_created),
		FILE_TEST(explicit_path_and_datestamps),
		FILE_TEST(relative_path_made_absolute),
		FILE_TEST(rotation_reopens),
		FILE_TEST(write_failures_counted),
		FILE_TEST(path_errors),
		FILE_TEST(bad_selector_rejected_by_configure),
		FILE_TEST(syslog_items_accepted),
		FILE_TEST(long_text_cut_with_mark),
		FILE_TEST(threads_write_whole_lines),
		FILE_TEST(panic_early_writes_panic_log),
		cmocka_unit_test(panic_early_without_config),
	};

	/* Timestamps are 20 characters in UTC with default selectors. */
	setenv("TZ", "UTC", 1);
	tzset();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
