/*
 * test_config.c - unit tests of sluice.conf reading and -bP printing
 * (core/config.c, config_reader.c, config_value.c, config_print.c).
 *
 * Each test runs in a fresh temporary directory, so that file names in
 * error messages are short relative paths ("main.conf:3: ...") and can be
 * compared as exact text. Cases come from tables of file contents with
 * the -bP line or the error message they must produce.
 */
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "config_table.h"

struct test_dir {
	char path[64];
	char old_cwd[PATH_MAX];
};

struct file_spec {
	const char *path;
	const char *text;
};

/* A file that loads, and one line of -bP output it must give. */
struct good_case {
	const char *title;
	const char *text;		/* of main.conf */
	struct file_spec extra[3];	/* more files, e.g. for .include */
	const char *defines[3];		/* -D arguments, NULL-terminated */
	const char *print;		/* option name for config_print */
	const char *want;		/* its output, newline included */
};

/* A file that fails to load, and the exact error it must give. */
struct bad_case {
	const char *title;
	const char *text;
	struct file_spec extra[3];
	const char *defines[3];
	const char *want;
};

static int
remove_entry(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup_dir(void **state)
{
	struct test_dir *dir = calloc(1, sizeof(*dir));

	if (dir == NULL)
		return -1;
	if (getcwd(dir->old_cwd, sizeof(dir->old_cwd)) == NULL)
		return -1;
	snprintf(dir->path, sizeof(dir->path), "/tmp/sluice-config-XXXXXX");
	if (mkdtemp(dir->path) == NULL || chdir(dir->path) < 0)
		return -1;
	*state = dir;
	return 0;
}

static int
teardown_dir(void **state)
{
	struct test_dir *dir = *state;
	int rc = 0;

	if (chdir(dir->old_cwd) < 0)
		rc = -1;
	if (nftw(dir->path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
		rc = -1;
	free(dir);
	return rc;
}

/* Writes text to path, creating one level of directory if needed. */
static void
write_file(const char *path, const char *text)
{
	const char *slash = strchr(path, '/');
	FILE *fp;

	if (slash != NULL && path[0] != '/') {
		char dir[256];

		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
		mkdir(dir, 0700);
	}
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static size_t
count_defines(const char *const *defines, size_t max)
{
	size_t n = 0;

	while (n < max && defines[n] != NULL)
		n++;
	return n;
}

/* Runs config_print into a string; the caller frees it. */
static char *
print_to_string(const struct config *config, const char *name,
    bool value_only, int *rc)
{
	char *text = NULL;
	size_t size = 0;
	FILE *fp = open_memstream(&text, &size);

	assert_non_null(fp);
	*rc = config_print(fp, config, name, value_only);
	assert_int_equal(fclose(fp), 0);
	return text;
}

/* Loads text as main.conf and expects success. */
static struct config *
load_ok(const char *text)
{
	struct config *config = NULL;
	char *error = NULL;
	int rc;

	write_file("main.conf", text);
	rc = config_load("main.conf", NULL, 0, &config, &error);
	if (rc != 0)
		fail_msg("load failed: %s", error);
	assert_non_null(config);
	return config;
}

/* Loads text as main.conf and returns the error; the caller frees it. */
static char *
load_error(const char *text)
{
	struct config *config = NULL;
	char *error = NULL;
	int rc;

	write_file("main.conf", text);
	rc = config_load("main.conf", NULL, 0, &config, &error);
	assert_int_equal(rc, -1);
	assert_non_null(config);
	assert_non_null(error);
	config_free(config);
	return error;
}

static void
expect_print(const struct config *config, const char *name,
    const char *want)
{
	int rc;
	char *got = print_to_string(config, name, false, &rc);

	assert_int_equal(rc, 0);
	if (strcmp(got, want) != 0)
		fail_msg("-bP %s: got \"%s\", want \"%s\"", name, got, want);
	free(got);
}

static const struct good_case good_cases[] = {
	/* Booleans. */
	{ "bool bare", "split_spool_directory\n", {{0}}, {0},
	    "split_spool_directory", "split_spool_directory\n" },
	{ "bool true", "split_spool_directory = true\n", {{0}}, {0},
	    "split_spool_directory", "split_spool_directory\n" },
	{ "bool TRUE", "split_spool_directory = TRUE\n", {{0}}, {0},
	    "split_spool_directory", "split_spool_directory\n" },
	{ "bool yes", "split_spool_directory=yes\n", {{0}}, {0},
	    "split_spool_directory", "split_spool_directory\n" },
	{ "bool empty", "split_spool_directory =\n", {{0}}, {0},
	    "split_spool_directory", "split_spool_directory\n" },
	{ "bool false", "split_spool_directory\nsplit_spool_directory = false\n",
	    {{0}}, {0}, "split_spool_directory", "no_split_spool_directory\n" },
	{ "bool no", "split_spool_directory\nsplit_spool_directory = No\n",
	    {{0}}, {0}, "split_spool_directory", "no_split_spool_directory\n" },
	{ "bool no_ prefix", "split_spool_directory\nno_split_spool_directory\n",
	    {{0}}, {0}, "split_spool_directory", "no_split_spool_directory\n" },
	{ "bool not_ prefix", "split_spool_directory\nnot_split_spool_directory\n",
	    {{0}}, {0}, "split_spool_directory", "no_split_spool_directory\n" },

	/* Sizes print with the largest of G, M and K that divides them. */
	{ "size M", "message_size_limit = 20M\n", {{0}}, {0},
	    "message_size_limit", "message_size_limit = 20M\n" },
	{ "size K", "message_size_limit = 100K\n", {{0}}, {0},
	    "message_size_limit", "message_size_limit = 100K\n" },
	{ "size G", "message_size_limit = 1G\n", {{0}}, {0},
	    "message_size_limit", "message_size_limit = 1G\n" },
	{ "size lower case", "message_size_limit = 3m\n", {{0}}, {0},
	    "message_size_limit", "message_size_limit = 3M\n" },
	{ "size 1024 is 1K", "message_size_limit = 1024\n", {{0}}, {0},
	    "message_size_limit", "message_size_limit = 1K\n" },
	{ "size 2048K is 2M", "message_size_limit = 2048K\n", {{0}}, {0},
	    "message_size_limit", "message_size_limit = 2M\n" },
	{ "size 1536K", "message_size_limit = 1536K\n", {{0}}, {0},
	    "message_size_limit", "message_size_limit = 1536K\n" },
	{ "size bytes", "message_size_limit = 1025\n", {{0}}, {0},
	    "message_size_limit", "message_size_limit = 1025\n" },
	{ "size hex", "message_size_limit = 0x400\n", {{0}}, {0},
	    "message_size_limit", "message_size_limit = 1K\n" },
	{ "size octal", "message_size_limit = 010\n", {{0}}, {0},
	    "message_size_limit", "message_size_limit = 8\n" },
	{ "size zero", "message_size_limit = 0\n", {{0}}, {0},
	    "message_size_limit", "message_size_limit = 0\n" },
	{ "size over 4G", "message_size_limit = 5G\n", {{0}}, {0},
	    "message_size_limit", "message_size_limit = 5G\n" },

	/* Times print as Exim prints them. */
	{ "time minutes", "delay_warning = 90m\n", {{0}}, {0},
	    "delay_warning", "delay_warning = 1h30m\n" },
	{ "time combined", "delay_warning = 1h30m\n", {{0}}, {0},
	    "delay_warning", "delay_warning = 1h30m\n" },
	{ "time seconds", "delay_warning = 90s\n", {{0}}, {0},
	    "delay_warning", "delay_warning = 1m30s\n" },
	{ "time days", "delay_warning = 25h\n", {{0}}, {0},
	    "delay_warning", "delay_warning = 1d1h\n" },
	{ "time weeks", "delay_warning = 15d\n", {{0}}, {0},
	    "delay_warning", "delay_warning = 2w1d\n" },
	{ "time all units", "delay_warning = 1w1d1h1m1s\n", {{0}}, {0},
	    "delay_warning", "delay_warning = 1w1d1h1m1s\n" },
	{ "time units out of order", "delay_warning = 1m1h\n", {{0}}, {0},
	    "delay_warning", "delay_warning = 1h1m\n" },
	{ "time zero", "delay_warning = 0s\n", {{0}}, {0},
	    "delay_warning", "delay_warning = 0s\n" },
	{ "time list", "delay_warning = 1h : 2h:1d\n", {{0}}, {0},
	    "delay_warning", "delay_warning = 1h:2h:1d\n" },
	{ "time max", "delay_warning = 2147483647s\n", {{0}}, {0},
	    "delay_warning", "delay_warning = 3550w5d3h14m7s\n" },

	/* Integers. */
	{ "int", "dns_port = 5353\n", {{0}}, {0},
	    "dns_port", "dns_port = 5353\n" },
	{ "int hex", "dns_port = 0x35\n", {{0}}, {0},
	    "dns_port", "dns_port = 53\n" },
	{ "int K", "delivery_port = 2K\n", {{0}}, {0},
	    "delivery_port", "delivery_port = 2048\n" },
	{ "int plus", "delivery_port = +587\n", {{0}}, {0},
	    "delivery_port", "delivery_port = 587\n" },

	/* Strings. */
	{ "string", "primary_hostname = mx.example.test\n", {{0}}, {0},
	    "primary_hostname", "primary_hostname = mx.example.test\n" },
	{ "string trailing space", "primary_hostname = a b  \t\n", {{0}}, {0},
	    "primary_hostname", "primary_hostname = a b\n" },
	{ "string no spaces", "primary_hostname=a\n", {{0}}, {0},
	    "primary_hostname", "primary_hostname = a\n" },
	{ "string leading space", "   primary_hostname = a\n", {{0}}, {0},
	    "primary_hostname", "primary_hostname = a\n" },
	{ "string hash inside", "primary_hostname = a # b\n", {{0}}, {0},
	    "primary_hostname", "primary_hostname = a # b\n" },
	{ "string backslash unquoted", "lua_policy = a\\tb\n", {{0}}, {0},
	    "lua_policy", "lua_policy = a\\tb\n" },
	{ "string quoted escapes",
	    "lua_policy = \"q\\tx\\\"y\\x41\\101\\1234\\z\\\\\"\n", {{0}}, {0},
	    "lua_policy", "lua_policy = q\\tx\"yAAS4z\\\n" },
	{ "string quoted controls",
	    "lua_policy = \"\\x7f\\x80\\n\\r\\b\\v\\f\\001\"  \n", {{0}}, {0},
	    "lua_policy", "lua_policy = \\177\\200\\n\\r\\b\\v\\f\\001\n" },
	{ "string quoted empty", "lua_policy = \"\"\n", {{0}}, {0},
	    "lua_policy", "lua_policy = \n" },
	{ "string set twice", "lua_policy = a\nlua_policy = b\n", {{0}}, {0},
	    "lua_policy", "lua_policy = b\n" },
	{ "string crlf", "lua_policy = /x.lua\r\n\r\n", {{0}}, {0},
	    "lua_policy", "lua_policy = /x.lua\n" },
	{ "string last line no newline", "lua_policy = /y.lua", {{0}}, {0},
	    "lua_policy", "lua_policy = /y.lua\n" },
	{ "enum classic", "message_id_format = classic\n", {{0}}, {0},
	    "message_id_format", "message_id_format = classic\n" },
	{ "list separator", "local_interfaces = <; ::1 ; 127.0.0.1\n", {{0}},
	    {0}, "local_interfaces",
	    "local_interfaces = <; ::1 ; 127.0.0.1\n" },
	{ "list quoted", "smarthost = \"a.example : b.example\"\n", {{0}}, {0},
	    "smarthost", "smarthost = a.example : b.example\n" },
	{ "dns servers", "dns_servers = 127.0.0.1 : 127.0.0.2\n", {{0}}, {0},
	    "dns_servers", "dns_servers = 127.0.0.1 : 127.0.0.2\n" },
	{ "dns servers v6", "dns_servers = <; ::1 ; 127.0.0.53\n", {{0}}, {0},
	    "dns_servers", "dns_servers = <; ::1 ; 127.0.0.53\n" },
	{ "ports", "daemon_smtp_ports = 25 : 465 : submission\n", {{0}}, {0},
	    "daemon_smtp_ports", "daemon_smtp_ports = 25 : 465 : submission\n" },

	/* Comments, blank lines and continuation. */
	{ "comments", "# a comment\n\n   # indented\n\t\nlua_policy = x\n",
	    {{0}}, {0}, "lua_policy", "lua_policy = x\n" },
	{ "continuation", "lua_policy = a \\\n     b\n", {{0}}, {0},
	    "lua_policy", "lua_policy = a b\n" },
	{ "continuation space after", "lua_policy = a\\  \n  b\n", {{0}}, {0},
	    "lua_policy", "lua_policy = ab\n" },
	{ "continuation comment", "lua_policy = a\\\n  # skipped\nb\n", {{0}},
	    {0}, "lua_policy", "lua_policy = ab\n" },
	{ "continuation blank ends", "lua_policy = a\\\n\nlua_policy = c\n",
	    {{0}}, {0}, "lua_policy", "lua_policy = c\n" },
	{ "continuation at end", "lua_policy = a\\\n", {{0}}, {0},
	    "lua_policy", "lua_policy = a\n" },
	{ "comment never continues", "# comment \\\nlua_policy = x\n", {{0}},
	    {0}, "lua_policy", "lua_policy = x\n" },

	/* Macros. */
	{ "macro", "POLICY = /etc/p.lua\nlua_policy = POLICY\n", {{0}}, {0},
	    "lua_policy", "lua_policy = /etc/p.lua\n" },
	{ "macro inside words", "H = h\nlua_policy = xH.Hx.H.HH\n", {{0}}, {0},
	    "lua_policy", "lua_policy = xh.hx.h.hh\n" },
	{ "macro longer first", "ABCD = y\nABC = x\nlua_policy = ABCD.ABC\n",
	    {{0}}, {0}, "lua_policy", "lua_policy = y.x\n" },
	{ "macro in macro", "FOO = a\nBAR = FOO-b\nlua_policy = BAR\n", {{0}},
	    {0}, "lua_policy", "lua_policy = a-b\n" },
	{ "macro later scans earlier",
	    "A1 = B2\nB2 = z\nlua_policy = A1\n", {{0}}, {0},
	    "lua_policy", "lua_policy = z\n" },
	{ "macro empty", "FOO=\nlua_policy = xFOOy\n", {{0}}, {0},
	    "lua_policy", "lua_policy = xy\n" },
	{ "macro redefine", "FOO = 1\nFOO == 2\nlua_policy = FOO\n", {{0}}, {0},
	    "lua_policy", "lua_policy = 2\n" },
	{ "macro redefine uses old", "FOO = 1\nFOO == FOO-2\nlua_policy = FOO\n",
	    {{0}}, {0}, "lua_policy", "lua_policy = 1-2\n" },
	{ "macro lower case tail", "Foo_1 = z\nlua_policy = Foo_1\n", {{0}}, {0},
	    "lua_policy", "lua_policy = z\n" },
	{ "macro as option line",
	    "SET_SPLIT = split_spool_directory\nSET_SPLIT\n", {{0}}, {0},
	    "split_spool_directory", "split_spool_directory\n" },
	{ "define overrides", "FOO = 1\nFOO == 3\nlua_policy = FOO\n", {{0}},
	    { "FOO=cmd" }, "lua_policy", "lua_policy = cmd\n" },
	{ "define without value", "lua_policy = <FOO>\n", {{0}}, { "FOO" },
	    "lua_policy", "lua_policy = <>\n" },
	{ "define two", "lua_policy = A/B\n", {{0}}, { "A=1", "B=2" },
	    "lua_policy", "lua_policy = 1/2\n" },

	/* Includes. */
	{ "include", ".include sub/a.conf\n",
	    { { "sub/a.conf", "lua_policy = from-a\n" } }, {0},
	    "lua_policy", "lua_policy = from-a\n" },
	{ "include relative to file", ".include sub/a.conf\n",
	    { { "sub/a.conf", ".include b.conf\n" },
	      { "sub/b.conf", "lua_policy = from-b\n" } }, {0},
	    "lua_policy", "lua_policy = from-b\n" },
	{ "include macro path", "DIR = sub\n  .include DIR/a.conf\n",
	    { { "sub/a.conf", "lua_policy = m\n" } }, {0},
	    "lua_policy", "lua_policy = m\n" },
	{ "include then more", ".include a.conf\nlua_policy = after\n",
	    { { "a.conf", "lua_policy = inside\n" } }, {0},
	    "lua_policy", "lua_policy = after\n" },
	{ "include twice in a row", ".include a.conf\n.include a.conf\n",
	    { { "a.conf", "lua_policy = again\n" } }, {0},
	    "lua_policy", "lua_policy = again\n" },
	{ "include macro defined inside", ".include a.conf\nlua_policy = M\n",
	    { { "a.conf", "M = inner\n" } }, {0},
	    "lua_policy", "lua_policy = inner\n" },
	{ "include if exists missing",
	    ".include_if_exists nothing.conf\nlua_policy = ok\n", {{0}}, {0},
	    "lua_policy", "lua_policy = ok\n" },
	{ "include if exists present", ".include_if_exists a.conf\n",
	    { { "a.conf", "lua_policy = present\n" } }, {0},
	    "lua_policy", "lua_policy = present\n" },

	/* Conditionals. */
	{ "ifdef undefined", ".ifdef FOO\nlua_policy = yes\n.endif\n", {{0}},
	    {0}, "lua_policy", "lua_policy = \n" },
	{ "ifdef defined", "FOO=1\n.ifdef FOO\nlua_policy = yes\n.endif\n",
	    {{0}}, {0}, "lua_policy", "lua_policy = yes\n" },
	{ "ifdef define", ".ifdef FOO\nlua_policy = yes\n.endif\n", {{0}},
	    { "FOO" }, "lua_policy", "lua_policy = yes\n" },
	{ "ifndef", ".ifndef FOO\nlua_policy = no-foo\n.endif\n", {{0}}, {0},
	    "lua_policy", "lua_policy = no-foo\n" },
	{ "elifdef", "FOO=1\n.ifndef FOO\nlua_policy = a\n.elifdef FOO\n"
	    "lua_policy = b\n.else\nlua_policy = c\n.endif\n", {{0}}, {0},
	    "lua_policy", "lua_policy = b\n" },
	{ "elifndef", ".ifdef FOO\nlua_policy = a\n.elifndef FOO\n"
	    "lua_policy = b\n.endif\n", {{0}}, {0},
	    "lua_policy", "lua_policy = b\n" },
	{ "else", ".ifdef FOO\nlua_policy = a\n.else\nlua_policy = c\n.endif\n",
	    {{0}}, {0}, "lua_policy", "lua_policy = c\n" },
	{ "only first branch", "A=1\nB=1\n.ifdef A\nlua_policy = a\n"
	    ".elifdef B\nlua_policy = b\n.else\nlua_policy = c\n.endif\n",
	    {{0}}, {0}, "lua_policy", "lua_policy = a\n" },
	{ "nested inactive", ".ifdef NO\n.ifndef NO\nlua_policy = x\n.else\n"
	    "lua_policy = y\n.endif\n.else\nlua_policy = z\n.endif\n", {{0}},
	    {0}, "lua_policy", "lua_policy = z\n" },
	{ "skipped block ignores errors",
	    ".ifdef NO\nno_such_option = 1\nMACRO = 1\n.include missing\n"
	    ".endif\nlua_policy = MACRO\n", {{0}}, {0},
	    "lua_policy", "lua_policy = MACRO\n" },
	{ "ifdef ten deep", ".ifdef A\n.ifdef A\n.ifdef A\n.ifdef A\n.ifdef A\n"
	    ".ifdef A\n.ifdef A\n.ifdef A\n.ifdef A\n.ifdef A\nlua_policy = x\n"
	    ".endif\n.endif\n.endif\n.endif\n.endif\n.endif\n.endif\n.endif\n"
	    ".endif\n.endif\n", {{0}}, { "A" }, "lua_policy",
	    "lua_policy = x\n" },

	/* Named lists. */
	{ "hostlist", "hostlist relay = 127.0.0.1 : ::::1\n", {{0}}, {0},
	    "+relay", "hostlist relay = 127.0.0.1 : ::::1\n" },
	{ "domainlist", "domainlist local_domains = @ : localhost\n", {{0}},
	    {0}, "+local_domains", "domainlist local_domains = @ : localhost\n" },
	{ "named list empty", "hostlist none =\n", {{0}}, {0},
	    "+none", "hostlist none = \n" },
	{ "named lists same name",
	    "localpartlist x = 4\naddresslist x = 3\nhostlist x = 1\n"
	    "domainlist x = 2\n", {{0}}, {0}, "+x",
	    "addresslist x = 3\ndomainlist x = 2\nhostlist x = 1\n"
	    "localpartlist x = 4\n" },
	{ "named list macro", "NET = 10.0.0.0/8\nhostlist n = NET\n", {{0}},
	    {0}, "+n", "hostlist n = 10.0.0.0/8\n" },

	/* Special names. */
	{ "config_file", "", {{0}}, {0}, "config_file", "main.conf\n" },
	{ "retry section keeps options",
	    "lua_policy = before\nbegin retry\n* * F,2h,15m\n", {{0}}, {0},
	    "lua_policy", "lua_policy = before\n" },
};

static void
test_good_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]);
	    i++) {
		const struct good_case *c = &good_cases[i];
		struct config *config = NULL;
		char *error = NULL;
		char *got;
		int rc;

		for (size_t f = 0; f < 3 && c->extra[f].path != NULL; f++)
			write_file(c->extra[f].path, c->extra[f].text);
		write_file("main.conf", c->text);
		rc = config_load("main.conf", c->defines,
		    count_defines(c->defines, 3), &config, &error);
		if (rc != 0)
			fail_msg("case \"%s\": load failed: %s", c->title, error);

		got = print_to_string(config, c->print, false, &rc);
		if (rc != 0 || strcmp(got, c->want) != 0)
			fail_msg("case \"%s\": got \"%s\" (rc %d), want \"%s\"",
			    c->title, got, rc, c->want);
		free(got);
		config_free(config);
	}
}

static const struct bad_case bad_cases[] = {
	{ "unknown option", "lua_policy = x\nfoo_bar = 1\n", {{0}}, {0},
	    "main.conf:2: unknown option \"foo_bar\"" },
	{ "unknown negated", "no_foo_bar\n", {{0}}, {0},
	    "main.conf:1: unknown option \"no_foo_bar\"" },
	{ "time bad unit", "delay_warning = 3x\n", {{0}}, {0},
	    "main.conf:1: invalid time value \"3x\" for delay_warning" },
	{ "time no unit", "delay_warning = 30\n", {{0}}, {0},
	    "main.conf:1: invalid time value \"30\" for delay_warning" },
	{ "time upper case", "delay_warning = 30S\n", {{0}}, {0},
	    "main.conf:1: invalid time value \"30S\" for delay_warning" },
	{ "time fraction", "delay_warning = 1.5h\n", {{0}}, {0},
	    "main.conf:1: invalid time value \"1.5h\" for delay_warning" },
	{ "time space", "delay_warning = 1h 30m\n", {{0}}, {0},
	    "main.conf:1: invalid time value \"1h 30m\" for delay_warning" },
	{ "time overflow", "delay_warning = 2147483648s\n", {{0}}, {0},
	    "main.conf:1: invalid time value \"2147483648s\" for delay_warning" },
	{ "time overflow weeks", "delay_warning = 100000w\n", {{0}}, {0},
	    "main.conf:1: invalid time value \"100000w\" for delay_warning" },
	{ "time list order", "delay_warning = 2h : 1h\n", {{0}}, {0},
	    "main.conf:1: time values for delay_warning must increase: \"1h\" "
	    "is not later than the one before" },
	{ "time list too long",
	    "delay_warning = 1h:2h:3h:4h:5h:6h:7h:8h:9h:10h:11h\n", {{0}}, {0},
	    "main.conf:1: too many time values for delay_warning (max 10)" },
	{ "time list empty", "delay_warning =\n", {{0}}, {0},
	    "main.conf:1: missing time value for delay_warning" },
	{ "size bad suffix", "message_size_limit = 5Q\n", {{0}}, {0},
	    "main.conf:1: invalid size value \"5Q\" for message_size_limit" },
	{ "size negative", "message_size_limit = -1\n", {{0}}, {0},
	    "main.conf:1: invalid size value \"-1\" for message_size_limit" },
	{ "size fraction", "message_size_limit = 1.5M\n", {{0}}, {0},
	    "main.conf:1: invalid size value \"1.5M\" for message_size_limit" },
	{ "size overflow", "message_size_limit = 99999999999G\n", {{0}}, {0},
	    "main.conf:1: invalid size value \"99999999999G\" for "
	    "message_size_limit" },
	{ "size empty", "message_size_limit =\n", {{0}}, {0},
	    "main.conf:1: invalid size value \"\" for message_size_limit" },
	{ "int range low", "dns_port = 0\n", {{0}}, {0},
	    "main.conf:1: value 0 for dns_port is out of range (1 to 65535)" },
	{ "int range high", "delivery_port = 65536\n", {{0}}, {0},
	    "main.conf:1: value 65536 for delivery_port is out of range "
	    "(1 to 65535)" },
	{ "int huge", "dns_port = 99999999999999999999\n", {{0}}, {0},
	    "main.conf:1: invalid integer value \"99999999999999999999\" for "
	    "dns_port" },
	{ "int text", "dns_port = domain\n", {{0}}, {0},
	    "main.conf:1: invalid integer value \"domain\" for dns_port" },
	{ "int empty", "dns_port =\n", {{0}}, {0},
	    "main.conf:1: invalid integer value \"\" for dns_port" },
	{ "bool bad value", "split_spool_directory = 1\n", {{0}}, {0},
	    "main.conf:1: invalid boolean value \"1\" for split_spool_directory: "
	    "expected true, false, yes or no" },
	{ "bool negated value", "no_split_spool_directory = true\n", {{0}}, {0},
	    "main.conf:1: no_split_spool_directory takes no value: write "
	    "no_split_spool_directory alone, or split_spool_directory = false" },
	{ "bool junk", "split_spool_directory junk\n", {{0}}, {0},
	    "main.conf:1: unexpected text \"junk\" after split_spool_directory" },
	{ "negated string", "no_primary_hostname\n", {{0}}, {0},
	    "main.conf:1: \"no_primary_hostname\": only a boolean option takes "
	    "a no_ or not_ prefix, and primary_hostname is not one" },
	{ "missing equals", "primary_hostname\n", {{0}}, {0},
	    "main.conf:1: missing \"=\" after primary_hostname" },
	{ "missing quote", "primary_hostname = \"abc\n", {{0}}, {0},
	    "main.conf:1: missing closing quote in the value of "
	    "primary_hostname" },
	{ "missing quote after escape", "primary_hostname = \"abc\\\"\n", {{0}},
	    {0}, "main.conf:1: missing closing quote in the value of "
	    "primary_hostname" },
	{ "text after quote", "primary_hostname = \"a\" b\n", {{0}}, {0},
	    "main.conf:1: unexpected text \"b\" after the quoted value of "
	    "primary_hostname" },
	{ "quoted NUL", "primary_hostname = \"a\\0b\"\n", {{0}}, {0},
	    "main.conf:1: NUL character in the value of primary_hostname" },
	{ "required empty", "spool_directory =\n", {{0}}, {0},
	    "main.conf:1: empty value for spool_directory" },
	{ "required empty quoted", "spool_directory = \"\"\n", {{0}}, {0},
	    "main.conf:1: empty value for spool_directory" },
	{ "required list empty", "daemon_smtp_ports =\n", {{0}}, {0},
	    "main.conf:1: empty value for daemon_smtp_ports" },
	{ "enum", "message_id_format = new\n", {{0}}, {0},
	    "main.conf:1: invalid value \"new\" for message_id_format: expected "
	    "current or classic" },
	{ "dns server name", "dns_servers = 127.0.0.1 : dns.example\n", {{0}},
	    {0}, "main.conf:1: invalid item \"dns.example\" in dns_servers: "
	    "expected an IPv4 or IPv6 address" },
	{ "port too big", "daemon_smtp_ports = 25 : 70000\n", {{0}}, {0},
	    "main.conf:1: invalid item \"70000\" in daemon_smtp_ports: expected a "
	    "port number from 1 to 65535 or a service name" },
	{ "port zero", "daemon_smtp_ports = 0\n", {{0}}, {0},
	    "main.conf:1: invalid item \"0\" in daemon_smtp_ports: expected a "
	    "port number from 1 to 65535 or a service name" },
	{ "port bad name", "daemon_smtp_ports = -x\n", {{0}}, {0},
	    "main.conf:1: invalid item \"-x\" in daemon_smtp_ports: expected a "
	    "port number from 1 to 65535 or a service name" },
	{ "named list twice", "hostlist relay = 1\nhostlist relay = 2\n", {{0}},
	    {0}, "main.conf:2: hostlist relay is already defined" },
	{ "named list no name", "hostlist = 1\n", {{0}}, {0},
	    "main.conf:1: missing list name after hostlist" },
	{ "named list no equals", "domainlist d 1\n", {{0}}, {0},
	    "main.conf:1: missing \"=\" after domainlist d" },
	{ "named list bad name", "addresslist re-lay = 1\n", {{0}}, {0},
	    "main.conf:1: missing \"=\" after addresslist re" },
	{ "begin routers", "begin routers\n", {{0}}, {0},
	    "main.conf:1: \"begin routers\" is not supported: sluice expresses "
	    "routing, transports and ACLs as hooks of the Lua policy named by "
	    "lua_policy (see doc/lua-api.md)" },
	{ "begin transports", "begin transports\n", {{0}}, {0},
	    "main.conf:1: \"begin transports\" is not supported: sluice "
	    "expresses routing, transports and ACLs as hooks of the Lua policy "
	    "named by lua_policy (see doc/lua-api.md)" },
	{ "begin acl", "begin retry\nbegin acl\n", {{0}}, {0},
	    "main.conf:2: \"begin acl\" is not supported: sluice expresses "
	    "routing, transports and ACLs as hooks of the Lua policy named by "
	    "lua_policy (see doc/lua-api.md)" },
	{ "begin authenticators", "begin authenticators\n", {{0}}, {0},
	    "main.conf:1: \"begin authenticators\" is not supported: sluice "
	    "expresses routing, transports and ACLs as hooks of the Lua policy "
	    "named by lua_policy (see doc/lua-api.md)" },
	{ "begin rewrite", "begin rewrite\n", {{0}}, {0},
	    "main.conf:1: \"begin rewrite\" is not supported: sluice expresses "
	    "routing, transports and ACLs as hooks of the Lua policy named by "
	    "lua_policy (see doc/lua-api.md)" },
	{ "begin unknown", "begin foo\n", {{0}}, {0},
	    "main.conf:1: unknown section \"foo\" (sluice reads only the main "
	    "and retry sections)" },
	{ "begin nothing", "begin\n", {{0}}, {0},
	    "main.conf:1: missing section name after begin" },
	{ "begin retry twice", "begin retry\n* * F,1h,5m\nbegin retry\n", {{0}},
	    {0}, "main.conf:3: \"begin retry\" appears a second time" },
	{ "no option name", "= x\n", {{0}}, {0},
	    "main.conf:1: expected an option setting (name = value), found "
	    "\"= x\"" },
	{ "macro line without equals", "SPLIT_spool_directory\n", {{0}}, {0},
	    "main.conf:1: invalid line \"SPLIT_spool_directory\": a line starting "
	    "with an upper-case letter defines a macro (NAME = value)" },
	{ "macro twice", "FOO = 1\nFOO = 2\n", {{0}}, {0},
	    "main.conf:2: macro \"FOO\" is already defined (use \"==\" to "
	    "redefine it)" },
	{ "macro redefine undefined", "FOO == 1\n", {{0}}, {0},
	    "main.conf:1: cannot redefine macro \"FOO\": it is not defined yet "
	    "(use \"=\" to define it)" },
	{ "macro contains earlier", "ABC = 1\nABCD = 2\n", {{0}}, {0},
	    "main.conf:2: macro name \"ABCD\" contains the name of the earlier "
	    "macro \"ABC\": define the longer name first" },
	{ "define contains define", "", {{0}}, { "AB=1", "XABX=2" },
	    "macro name \"XABX\" contains the name of the earlier macro \"AB\": "
	    "define the longer name first" },
	{ "define bad name", "", {{0}}, { "foo=1" },
	    "invalid -D definition \"foo=1\": a macro name starts with an "
	    "upper-case letter and contains only letters, digits and '_'" },
	{ "define bad char", "", {{0}}, { "FO-O=1" },
	    "invalid -D definition \"FO-O=1\": a macro name starts with an "
	    "upper-case letter and contains only letters, digits and '_'" },
	{ "include missing", "\n.include missing.conf\n", {{0}}, {0},
	    "main.conf:2: cannot open included file \"missing.conf\": No such "
	    "file or directory" },
	{ "include missing nested", ".include sub/a.conf\n",
	    { { "sub/a.conf", "\n\n.include b.conf\n" } }, {0},
	    "sub/a.conf:3: cannot open included file \"sub/b.conf\": No such "
	    "file or directory" },
	{ "include no name", ".include\n", {{0}}, {0},
	    "main.conf:1: missing file name after .include" },
	{ "include directory", ".include sub\n",
	    { { "sub/x", "" } }, {0},
	    "main.conf:1: configuration file \"sub\" is not a regular file" },
	{ "include loop", ".include a.conf\n",
	    { { "a.conf", "# loop\n.include main.conf\n" } }, {0},
	    "a.conf:2: include loop: \"main.conf\" is already being read" },
	{ "include self", "lua_policy = x\n.include main.conf\n", {{0}}, {0},
	    "main.conf:2: include loop: \"main.conf\" is already being read" },
	{ "error in include", ".include a.conf\n",
	    { { "a.conf", "lua_policy = ok\nbad_option = 1\n" } }, {0},
	    "a.conf:2: unknown option \"bad_option\"" },
	{ "error after include", ".include a.conf\nbad_option = 1\n",
	    { { "a.conf", "lua_policy = ok\n" } }, {0},
	    "main.conf:2: unknown option \"bad_option\"" },
	{ "ifdef unterminated", "lua_policy = x\n.ifdef FOO\n", {{0}}, {0},
	    "main.conf:2: .ifdef without a matching .endif before the end of "
	    "the file" },
	{ "ifndef unterminated", ".ifndef FOO\n.ifdef FOO\n.endif\n", {{0}}, {0},
	    "main.conf:1: .ifndef without a matching .endif before the end of "
	    "the file" },
	{ "ifdef unterminated in include", ".include a.conf\n.endif\n",
	    { { "a.conf", "\n.ifdef FOO\n" } }, {0},
	    "a.conf:2: .ifdef without a matching .endif before the end of the "
	    "file" },
	{ "endif of outer file", ".ifdef FOO\n.include a.conf\n.endif\n",
	    { { "a.conf", ".endif\n" } }, { "FOO" },
	    "a.conf:1: .endif without a matching .ifdef" },
	{ "else alone", ".else\n", {{0}}, {0},
	    "main.conf:1: .else without a matching .ifdef" },
	{ "endif alone", "\n.endif\n", {{0}}, {0},
	    "main.conf:2: .endif without a matching .ifdef" },
	{ "elifdef alone", ".elifdef FOO\n", {{0}}, {0},
	    "main.conf:1: .elifdef without a matching .ifdef" },
	{ "elifdef after else", ".ifdef A\n.else\n.elifdef B\n.endif\n", {{0}},
	    {0}, "main.conf:3: .elifdef after .else" },
	{ "else after else", ".ifdef A\n.else\n.else\n.endif\n", {{0}}, {0},
	    "main.conf:3: .else after .else" },
	{ "ifdef too deep", ".ifdef A\n.ifdef A\n.ifdef A\n.ifdef A\n.ifdef A\n"
	    ".ifdef A\n.ifdef A\n.ifdef A\n.ifdef A\n.ifdef A\n.ifdef A\n",
	    {{0}}, {0}, "main.conf:11: .ifdef nested more than 10 levels deep" },
	{ "ifdef no name", ".ifdef\n.endif\n", {{0}}, {0},
	    "main.conf:1: missing macro name after .ifdef" },
	{ "ifdef lower case", ".ifdef foo\n.endif\n", {{0}}, {0},
	    "main.conf:1: invalid macro name \"foo\" after .ifdef" },
	{ "ifdef two names", ".ifndef A B\n.endif\n", {{0}}, {0},
	    "main.conf:1: invalid macro name \"A B\" after .ifndef" },
	{ "endif with text", ".ifdef A\n.endif A\n", {{0}}, {0},
	    "main.conf:2: unexpected text \"A\" after .endif" },
	{ "unknown directive", ".foo bar\n", {{0}}, {0},
	    "main.conf:1: unknown directive \".foo\"" },
	{ "unknown directive in skipped block", ".ifdef NO\n.inclde x\n.endif\n",
	    {{0}}, {0}, "main.conf:2: unknown directive \".inclde\"" },
	{ "missing main file", NULL, {{0}}, {0},
	    "cannot open configuration file \"main.conf\": No such file or "
	    "directory" },
};

static void
test_bad_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct config *config = NULL;
		char *error = NULL;
		int rc;

		for (size_t f = 0; f < 3 && c->extra[f].path != NULL; f++)
			write_file(c->extra[f].path, c->extra[f].text);
		if (c->text != NULL)
			write_file("main.conf", c->text);
		else
			unlink("main.conf");
		rc = config_load("main.conf", c->defines,
		    count_defines(c->defines, 3), &config, &error);
		if (rc != -1)
			fail_msg("case \"%s\": loaded, want error \"%s\"",
			    c->title, c->want);
		assert_non_null(config);
		if (error == NULL || strcmp(error, c->want) != 0)
			fail_msg("case \"%s\": got error \"%s\", want \"%s\"",
			    c->title, error != NULL ? error : "(none)", c->want);
		free(error);
		config_free(config);
		unlink("main.conf");
	}
}

/* A C string in the tables cannot hold a NUL, so this test writes it. */
static void
test_nul_byte(void **state)
{
	static const char text[] = "lua_policy = a\n# x\0y\n";
	struct config *config = NULL;
	char *error = NULL;
	FILE *fp;

	(void)state;
	fp = fopen("main.conf", "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, sizeof(text) - 1, fp), sizeof(text) - 1);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(config_load("main.conf", NULL, 0, &config, &error), -1);
	assert_string_equal(error, "main.conf:2: NUL character in line");
	free(error);
	config_free(config);
}

static void
test_defaults(void **state)
{
	struct config *config;
	struct utsname name;
	char want[512];

	(void)state;
	config = load_ok("");
	expect_print(config, "daemon_smtp_ports", "daemon_smtp_ports = smtp\n");
	expect_print(config, "delay_warning", "delay_warning = 1d\n");
	expect_print(config, "delivery_port", "delivery_port = 25\n");
	expect_print(config, "dns_port", "dns_port = 53\n");
	expect_print(config, "dns_servers", "dns_servers = \n");
	expect_print(config, "exim_group", "exim_group = \n");
	expect_print(config, "exim_user", "exim_user = sluice\n");
	expect_print(config, "local_interfaces",
	    "local_interfaces = <; 0.0.0.0 ; ::0\n");
	expect_print(config, "log_file_path", "log_file_path = \n");
	expect_print(config, "log_selector", "log_selector = \n");
	expect_print(config, "lua_policy", "lua_policy = \n");
	expect_print(config, "message_id_format",
	    "message_id_format = current\n");
	expect_print(config, "message_size_limit",
	    "message_size_limit = 50M\n");
	expect_print(config, "pid_file_path", "pid_file_path = \n");
	expect_print(config, "smarthost", "smarthost = \n");
	expect_print(config, "split_spool_directory",
	    "no_split_spool_directory\n");
	expect_print(config, "spool_directory",
	    "spool_directory = /var/spool/sluice\n");

	assert_int_equal(uname(&name), 0);
	snprintf(want, sizeof(want), "primary_hostname = %s\n", name.nodename);
	expect_print(config, "primary_hostname", want);
	snprintf(want, sizeof(want), "qualify_domain = %s\n", name.nodename);
	expect_print(config, "qualify_domain", want);
	snprintf(want, sizeof(want), "qualify_recipient = %s\n", name.nodename);
	expect_print(config, "qualify_recipient", want);

	assert_int_equal(config->message_size_limit, 50 * 1024 * 1024);
	assert_int_equal(config->dns_port, 53);
	assert_int_equal(config->delivery_port, 25);
	assert_int_equal(config->message_id_format, MSGID_FORMAT_CURRENT);
	assert_int_equal(config->delay_warning.count, 1);
	assert_int_equal(config->delay_warning.values[0], 24 * 60 * 60);
	assert_false(config->split_spool_directory);
	assert_null(config->named_lists);
	assert_int_equal(config->retry_rule_count, 0);
	config_free(config);
}

static void
test_qualify_fallbacks(void **state)
{
	struct config *config;

	(void)state;
	config = load_ok("primary_hostname = mx.example.test\n");
	assert_string_equal(config->qualify_domain, "mx.example.test");
	assert_string_equal(config->qualify_recipient, "mx.example.test");
	config_free(config);

	config = load_ok("primary_hostname = mx.example.test\n"
	    "qualify_domain = example.test\n");
	assert_string_equal(config->primary_hostname, "mx.example.test");
	assert_string_equal(config->qualify_domain, "example.test");
	assert_string_equal(config->qualify_recipient, "example.test");
	config_free(config);

	config = load_ok("qualify_domain = a.test\nqualify_recipient = b.test\n");
	assert_string_equal(config->qualify_domain, "a.test");
	assert_string_equal(config->qualify_recipient, "b.test");
	config_free(config);
}

static void
test_fields_set(void **state)
{
	struct config *config;

	(void)state;
	config = load_ok("split_spool_directory\n"
	    "message_size_limit = 1536K\n"
	    "message_id_format = classic\n"
	    "delay_warning = 2h : 1d\n"
	    "dns_port = 5353\n"
	    "delivery_port = 2525\n"
	    "spool_directory = /srv/spool\n"
	    "dns_servers = 127.0.0.1\n");
	assert_true(config->split_spool_directory);
	assert_int_equal(config->message_size_limit, 1536 * 1024);
	assert_int_equal(config->message_id_format, MSGID_FORMAT_CLASSIC);
	assert_int_equal(config->delay_warning.count, 2);
	assert_int_equal(config->delay_warning.values[0], 2 * 3600);
	assert_int_equal(config->delay_warning.values[1], 24 * 3600);
	assert_int_equal(config->dns_port, 5353);
	assert_int_equal(config->delivery_port, 2525);
	assert_string_equal(config->spool_directory, "/srv/spool");
	assert_string_equal(config->dns_servers, "127.0.0.1");
	assert_string_equal(config->config_file, "main.conf");
	config_free(config);
}

/* On an error the caller still gets what was read before it. */
static void
test_partial_on_error(void **state)
{
	struct config *config = NULL;
	char *error = NULL;

	(void)state;
	write_file("main.conf", "spool_directory = /srv/q\n"
	    "log_file_path = /srv/log/%slog\nbroken\n");
	assert_int_equal(config_load("main.conf", NULL, 0, &config, &error), -1);
	assert_string_equal(error, "main.conf:3: unknown option \"broken\"");
	assert_non_null(config);
	assert_string_equal(config->spool_directory, "/srv/q");
	assert_string_equal(config->log_file_path, "/srv/log/%slog");
	assert_string_equal(config->exim_user, "sluice");
	assert_non_null(config->primary_hostname);
	assert_true(config->primary_hostname[0] != '\0');
	free(error);
	config_free(config);
}

static void
test_named_list_lookup(void **state)
{
	struct config *config;

	(void)state;
	config = load_ok("hostlist relay = 127.0.0.1 : ::::1\n"
	    "domainlist local_domains = @\n"
	    "addresslist senders = a@example.test\n"
	    "localpartlist postmaster = postmaster : abuse\n"
	    "domainlist relay = other.test\n");
	assert_string_equal(config_named_list(config, CONFIG_HOSTLIST, "relay"),
	    "127.0.0.1 : ::::1");
	assert_string_equal(config_named_list(config, CONFIG_DOMAINLIST, "relay"),
	    "other.test");
	assert_string_equal(config_named_list(config, CONFIG_DOMAINLIST,
	    "local_domains"), "@");
	assert_string_equal(config_named_list(config, CONFIG_ADDRESSLIST,
	    "senders"), "a@example.test");
	assert_string_equal(config_named_list(config, CONFIG_LOCALPARTLIST,
	    "postmaster"), "postmaster : abuse");
	assert_null(config_named_list(config, CONFIG_HOSTLIST, "local_domains"));
	assert_null(config_named_list(config, CONFIG_ADDRESSLIST, "relay"));
	assert_null(config_named_list(config, CONFIG_HOSTLIST, "nothing"));
	config_free(config);
}

static void
test_retry_rules(void **state)
{
	struct config *config;

	(void)state;
	write_file("retry.conf", "# more rules\n*.example.test * F,1h,5m\n");
	config = load_ok("lua_policy = x\n"
	    "begin retry\n"
	    "\n"
	    "# comment\n"
	    "*   *   F,2h,15m; \\\n"
	    "        G,16h,1h,1.5; F,4d,6h\n"
	    "RULE = example.test\n"
	    "RULE * F,1h,10m\n"
	    ".include retry.conf\n"
	    "begin_with_word * F,1h,1m\n");
	assert_int_equal(config->retry_rule_count, 4);
	assert_string_equal(config->retry_rules[0].text,
	    "*   *   F,2h,15m; G,16h,1h,1.5; F,4d,6h");
	assert_string_equal(config->retry_rules[0].file, "main.conf");
	assert_int_equal(config->retry_rules[0].line, 5);
	assert_string_equal(config->retry_rules[1].text,
	    "example.test * F,1h,10m");
	assert_int_equal(config->retry_rules[1].line, 8);
	assert_string_equal(config->retry_rules[2].text,
	    "*.example.test * F,1h,5m");
	assert_string_equal(config->retry_rules[2].file, "retry.conf");
	assert_int_equal(config->retry_rules[2].line, 2);
	assert_string_equal(config->retry_rules[3].text,
	    "begin_with_word * F,1h,1m");
	assert_string_equal(config->lua_policy, "x");
	config_free(config);
}

static void
test_print_all(void **state)
{
	struct config *config;
	char *text, *line, *save = NULL;
	char previous[128] = "";
	int rc, lines = 0;

	(void)state;
	config = load_ok("primary_hostname = mx.example.test\n");
	text = print_to_string(config, NULL, false, &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(text, "\nno_split_spool_directory\n"));
	assert_non_null(strstr(text, "\nlog_selector = \n"));
	assert_non_null(strstr(text, "\nprimary_hostname = mx.example.test\n"));
	assert_non_null(strstr(text, "\nno_allow_domain_literals\n"));
	assert_non_null(strstr(text, "\ndaemon_smtp_ports = smtp\n"));
	assert_non_null(strstr(text, "\nsmtp_receive_timeout = 5m\n"));

	/* Sorted by option name, as Exim prints them. */
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char name[128];
		const char *base = strncmp(line, "no_", 3) == 0 ? line + 3 : line;

		snprintf(name, sizeof(name), "%.*s", (int)strcspn(base, " "),
		    base);
		if (strcmp(previous, name) >= 0)
			fail_msg("\"%s\" printed after \"%s\"", name, previous);
		snprintf(previous, sizeof(previous), "%s", name);
		lines++;
	}
	assert_int_equal(lines, (int)config_option_count);
	free(text);
	config_free(config);
}

static void
test_print_special(void **state)
{
	struct config *config;
	char *text;
	int rc;

	(void)state;
	config = load_ok("hostlist relay = 127.0.0.1\nlua_policy = \"a\\tb\"\n");

	text = print_to_string(config, "nosuch", false, &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(text, "nosuch is not a known option\n");
	free(text);

	text = print_to_string(config, "no_split_spool_directory", false, &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(text,
	    "no_split_spool_directory is not a known option\n");
	free(text);

	text = print_to_string(config, "+nope", false, &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(text, "no address, domain, host, or local part "
	    "list called \"nope\" exists\n");
	free(text);

	text = print_to_string(config, "spool_directory", true, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(text, "/var/spool/sluice\n");
	free(text);

	text = print_to_string(config, "split_spool_directory", true, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(text, "no_split_spool_directory\n");
	free(text);

	text = print_to_string(config, "log_selector", true, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(text, "\n");
	free(text);

	text = print_to_string(config, "lua_policy", true, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(text, "a\\tb\n");
	free(text);

	text = print_to_string(config, "+relay", true, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(text, "127.0.0.1\n");
	free(text);

	text = print_to_string(config, "config_file", true, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(text, "main.conf\n");
	free(text);

	text = print_to_string(config, "message_size_limit", true, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(text, "50M\n");
	free(text);
	config_free(config);
}

static void
test_print_help(void **state)
{
	char *text = NULL;
	size_t size = 0;
	FILE *fp = open_memstream(&text, &size);

	(void)state;
	assert_non_null(fp);
	config_print_help(fp);
	assert_int_equal(fclose(fp), 0);
	assert_non_null(strstr(text, "\nallow_domain_literals (boolean, "
	    "default: false)\n    "));
	assert_non_null(strstr(text, "\nsmtp_receive_timeout (time, default: "
	    "5m)\n"));
	assert_non_null(strstr(text, "\nsplit_spool_directory (boolean, "
	    "default: false)\n"));
	assert_non_null(strstr(text, "\nprimary_hostname (string, default: "
	    "unset)\n"));
	free(text);
}

/* Bounds: each gives its own error. */
static void
test_line_too_long(void **state)
{
	char *text, *error;

	(void)state;
	text = malloc(CONFIG_LINE_MAX + 64);
	assert_non_null(text);

	/* Exactly CONFIG_LINE_MAX characters is fine. */
	memset(text, 'x', CONFIG_LINE_MAX);
	memcpy(text, "lua_policy = ", 13);
	strcpy(text + CONFIG_LINE_MAX, "\n");
	config_free(load_ok(text));

	memset(text, 'x', CONFIG_LINE_MAX + 1);
	memcpy(text, "lua_policy = ", 13);
	strcpy(text + CONFIG_LINE_MAX + 1, "\n");
	error = load_error(text);
	assert_string_equal(error, "main.conf:1: line longer than 8192 "
	    "characters");
	free(error);

	/* Two halves that fit alone but not joined. */
	memset(text, 'y', CONFIG_LINE_MAX + 10);
	memcpy(text, "\nlua_policy = ", 14);
	memcpy(text + 4200, "\\\n", 2);
	strcpy(text + CONFIG_LINE_MAX + 10, "\n");
	error = load_error(text);
	assert_string_equal(error, "main.conf:2: line longer than 8192 "
	    "characters after joining continuation lines");
	free(error);

	/* Macro replacement that makes the line too long. */
	memset(text, 'z', 5000);
	memcpy(text, "BIG = ", 6);
	strcpy(text + 5000, "\nlua_policy = BIG BIG\n");
	error = load_error(text);
	assert_string_equal(error, "main.conf:2: line longer than 8192 "
	    "characters after macro replacement");
	free(error);
	free(text);
}

static void
test_list_item_too_long(void **state)
{
	char text[CONFIG_LIST_ITEM_MAX + 128];
	char *error;
	struct config *config;

	(void)state;
	memcpy(text, "smarthost = a : ", 16);
	memset(text + 16, 'h', CONFIG_LIST_ITEM_MAX);
	strcpy(text + 16 + CONFIG_LIST_ITEM_MAX, " : b\n");
	config = load_ok(text);
	config_free(config);

	memcpy(text, "smarthost = a : ", 16);
	memset(text + 16, 'h', CONFIG_LIST_ITEM_MAX + 1);
	strcpy(text + 17 + CONFIG_LIST_ITEM_MAX, "\n");
	error = load_error(text);
	assert_string_equal(error, "main.conf:1: list item longer than 1024 "
	    "characters in smarthost");
	free(error);

	memcpy(text, "hostlist h = ", 13);
	memset(text + 13, 'h', CONFIG_LIST_ITEM_MAX + 1);
	strcpy(text + 14 + CONFIG_LIST_ITEM_MAX, "\n");
	error = load_error(text);
	assert_string_equal(error, "main.conf:1: list item longer than 1024 "
	    "characters in hostlist h");
	free(error);

	memcpy(text, "delay_warning = 1h:", 19);
	memset(text + 19, '1', CONFIG_LIST_ITEM_MAX + 1);
	strcpy(text + 20 + CONFIG_LIST_ITEM_MAX, "\n");
	error = load_error(text);
	assert_string_equal(error, "main.conf:1: list item longer than 1024 "
	    "characters in delay_warning");
	free(error);
}

static void
test_too_many_macros(void **state)
{
	size_t size = (CONFIG_MACROS_MAX + 1) * 16 + 1;
	char *text = malloc(size);
	char *error;
	size_t n = 0;

	(void)state;
	assert_non_null(text);
	for (int i = 0; i < CONFIG_MACROS_MAX; i++)
		n += (size_t)snprintf(text + n, size - n, "M%04d = %d\n", i, i);
	config_free(load_ok(text));

	snprintf(text + n, size - n, "M%04d = x\n", CONFIG_MACROS_MAX);
	error = load_error(text);
	assert_string_equal(error, "main.conf:1025: too many macros (max 1024)");
	free(error);
	free(text);
}

static void
test_too_many_defines(void **state)
{
	const char *defines[CONFIG_DEFINES_MAX + 1];
	char names[CONFIG_DEFINES_MAX + 1][8];
	struct config *config = NULL;
	char *error = NULL;

	(void)state;
	for (int i = 0; i <= CONFIG_DEFINES_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "D%02d=1", i);
		defines[i] = names[i];
	}
	write_file("main.conf", "");
	assert_int_equal(config_load("main.conf", defines, CONFIG_DEFINES_MAX,
	    &config, &error), 0);
	config_free(config);

	config = NULL;
	assert_int_equal(config_load("main.conf", defines,
	    CONFIG_DEFINES_MAX + 1, &config, &error), -1);
	assert_string_equal(error, "too many -D definitions (max 10)");
	assert_non_null(config);
	free(error);
	config_free(config);
}

static void
test_include_depth(void **state)
{
	char name[32], text[64];
	char *error;

	(void)state;
	/* main.conf includes i1.conf, which includes i2.conf, and so on. */
	for (int i = 1; i <= CONFIG_INCLUDE_DEPTH_MAX + 1; i++) {
		snprintf(name, sizeof(name), "i%d.conf", i);
		snprintf(text, sizeof(text), ".include i%d.conf\n", i + 1);
		write_file(name, i == CONFIG_INCLUDE_DEPTH_MAX ?
		    "lua_policy = deep\n" : text);
	}
	config_free(load_ok(".include i1.conf\n"));

	snprintf(name, sizeof(name), "i%d.conf", CONFIG_INCLUDE_DEPTH_MAX);
	snprintf(text, sizeof(text), ".include i%d.conf\n",
	    CONFIG_INCLUDE_DEPTH_MAX + 1);
	write_file(name, text);
	error = load_error(".include i1.conf\n");
	assert_string_equal(error, "i16.conf:1: .include nested more than 16 "
	    "levels deep at \"i17.conf\"");
	free(error);
}

/* Expected items of one list, joined with '|', "(none)" for no item. */
struct list_case {
	const char *list;
	const char *want;
};

static const struct list_case list_cases[] = {
	{ "a : b:c", "a|b|c" },
	{ "a::b : c", "a:b|c" },
	{ "a::", "a:" },
	{ "<; a;b ; c:d", "a|b|c:d" },
	{ "  <; a;;b", "a;b" },
	{ "<, x , y", "x|y" },
	{ "", "(none)" },
	{ "   ", "(none)" },
	{ ":", "" },
	{ "a : : b", "a||b" },
	{ "a :", "a" },
	{ "  spaced item  ", "spaced item" },
	{ "<abc", "<abc" },
	{ "::::1 : 127.0.0.1", "::1|127.0.0.1" },
};

static void
test_list_iter(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(list_cases) / sizeof(list_cases[0]);
	    i++) {
		struct config_list_iter iter;
		char item[64], got[256] = "";
		size_t count = 0;

		config_list_init(&iter, list_cases[i].list);
		while (config_list_next(&iter, item, sizeof(item)) != NULL) {
			if (count++ > 0)
				strcat(got, "|");
			strcat(got, item);
		}
		assert_false(iter.error);
		if (count == 0)
			strcpy(got, "(none)");
		if (strcmp(got, list_cases[i].want) != 0)
			fail_msg("list \"%s\": got \"%s\", want \"%s\"",
			    list_cases[i].list, got, list_cases[i].want);
	}
}

static void
test_list_iter_bounds(void **state)
{
	struct config_list_iter iter;
	char item[4];

	(void)state;
	config_list_init(&iter, NULL);
	assert_null(config_list_next(&iter, item, sizeof(item)));
	assert_false(iter.error);

	config_list_init(&iter, "abc : abcd : x");
	assert_string_equal(config_list_next(&iter, item, sizeof(item)), "abc");
	assert_null(config_list_next(&iter, item, sizeof(item)));
	assert_true(iter.error);
	assert_null(config_list_next(&iter, item, sizeof(item)));
}

struct time_case {
	const char *text;
	int seconds;		/* -1: invalid */
	const char *printed;
};

static const struct time_case time_cases[] = {
	{ "0s", 0, "0s" },
	{ "30s", 30, "30s" },
	{ "90s", 90, "1m30s" },
	{ "30m", 1800, "30m" },
	{ "2h", 7200, "2h" },
	{ "1d", 86400, "1d" },
	{ "1w", 604800, "1w" },
	{ "1h30m", 5400, "1h30m" },
	{ "1h1h", 7200, "2h" },
	{ "8d", 691200, "1w1d" },
	{ "2147483647s", INT_MAX, "3550w5d3h14m7s" },
	{ "", -1, NULL },
	{ "30", -1, NULL },
	{ "h", -1, NULL },
	{ "1x", -1, NULL },
	{ "-1s", -1, NULL },
	{ " 1s", -1, NULL },
	{ "1s ", -1, NULL },
	{ "1H", -1, NULL },
	{ "2147483648s", -1, NULL },
	{ "3551w", -1, NULL },
	{ "99999999999999999999s", -1, NULL },
};

static void
test_parse_time(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(time_cases) / sizeof(time_cases[0]);
	    i++) {
		const struct time_case *c = &time_cases[i];
		int seconds = -7;
		int rc = config_parse_time(c->text, &seconds);
		char printed[64];

		if (c->seconds < 0) {
			if (rc != -1)
				fail_msg("time \"%s\": got %d, want invalid",
				    c->text, seconds);
			continue;
		}
		if (rc != 0 || seconds != c->seconds)
			fail_msg("time \"%s\": got %d (rc %d), want %d", c->text,
			    seconds, rc, c->seconds);
		config_format_time(seconds, printed, sizeof(printed));
		assert_string_equal(printed, c->printed);
	}
}

static void
test_format_time_short_buffer(void **state)
{
	char buf[4];

	(void)state;
	config_format_time(INT_MAX, buf, sizeof(buf));
	assert_true(strlen(buf) < sizeof(buf));
}

struct size_case {
	const char *text;
	int64_t bytes;		/* -1: invalid */
};

static const struct size_case size_cases[] = {
	{ "0", 0 },
	{ "1", 1 },
	{ "100K", 102400 },
	{ "100k", 102400 },
	{ "50M", 52428800 },
	{ "1G", 1073741824 },
	{ "0x10", 16 },
	{ "010", 8 },
	{ "8589934591G", (int64_t)8589934591 * 1073741824 },
	{ "", -1 },
	{ "-1", -1 },
	{ "1T", -1 },
	{ "1KB", -1 },
	{ " 1", -1 },
	{ "1 ", -1 },
	{ "08", -1 },
	{ "8589934592G", -1 },
	{ "99999999999999999999", -1 },
};

static void
test_parse_size(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]);
	    i++) {
		const struct size_case *c = &size_cases[i];
		int64_t bytes = -7;
		int rc = config_parse_size(c->text, &bytes);

		if (c->bytes < 0 && rc != -1)
			fail_msg("size \"%s\": got %lld, want invalid", c->text,
			    (long long)bytes);
		if (c->bytes >= 0 && (rc != 0 || bytes != c->bytes))
			fail_msg("size \"%s\": got %lld (rc %d), want %lld",
			    c->text, (long long)bytes, rc, (long long)c->bytes);
	}
}

/* The options that bound SMTP clients: a time option, a list checked
 * like the others, and range errors that name the option. */
static void
test_smtp_limit_options(void **state)
{
	struct config *config;
	char *error;

	(void)state;
	config = load_ok("smtp_command_timeout = 1h30m\n"
	    "smtp_receive_timeout = 0s\nrecipients_max = 100000\n"
	    "smtp_reserve_hosts = <; 192.0.2.0/24 ; ::1\n"
	    "no_smtp_enforce_sync\ncheck_spool_space = 100K\n");
	assert_int_equal(config->smtp_command_timeout, 5400);
	assert_int_equal(config->smtp_receive_timeout, 0);
	assert_int_equal(config->smtp_max_session_time, 3600);
	assert_int_equal(config->recipients_max, 100000);
	assert_false(config->smtp_enforce_sync);
	assert_int_equal(config->check_spool_space, 100 * 1024);
	assert_int_equal(config->smtp_accept_max, 20);
	expect_print(config, "smtp_command_timeout",
	    "smtp_command_timeout = 1h30m\n");
	expect_print(config, "smtp_receive_timeout",
	    "smtp_receive_timeout = 0s\n");
	expect_print(config, "smtp_enforce_sync", "no_smtp_enforce_sync\n");
	config_free(config);

	/* As in Exim, a time needs its unit. */
	error = load_error("smtp_receive_timeout = 300\n");
	assert_string_equal(error, "main.conf:1: invalid time value \"300\" "
	    "for smtp_receive_timeout");
	free(error);
	error = load_error("recipients_max = 100001\n");
	assert_string_equal(error, "main.conf:1: value 100001 for "
	    "recipients_max is out of range (0 to 100000)");
	free(error);
	error = load_error("header_line_maxsize = -1\n");
	assert_non_null(strstr(error, "out of range"));
	free(error);
}

#define DIR_TEST(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		DIR_TEST(test_good_cases),
		DIR_TEST(test_bad_cases),
		DIR_TEST(test_nul_byte),
		DIR_TEST(test_defaults),
		DIR_TEST(test_qualify_fallbacks),
		DIR_TEST(test_fields_set),
		DIR_TEST(test_partial_on_error),
		DIR_TEST(test_named_list_lookup),
		DIR_TEST(test_retry_rules),
		DIR_TEST(test_print_all),
		DIR_TEST(test_print_special),
		DIR_TEST(test_print_help),
		DIR_TEST(test_smtp_limit_options),
		DIR_TEST(test_line_too_long),
		DIR_TEST(test_list_item_too_long),
		DIR_TEST(test_too_many_macros),
		DIR_TEST(test_too_many_defines),
		DIR_TEST(test_include_depth),
		cmocka_unit_test(test_list_iter),
		cmocka_unit_test(test_list_iter_bounds),
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test(test_format_time_short_buffer),
		cmocka_unit_test(test_parse_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
