/*
 * config.h - sluice.conf, read in the syntax of Exim's main configuration
 * section.
 *
 * The file holds "name = value" options, named lists (hostlist,
 * domainlist, addresslist), macros, .include/.ifdef directives and a
 * "begin retry" section. Every option is declared once, in the option
 * table of config.c, with its name, type, default and help text; -bP
 * prints from that table.
 *
 * A struct config is immutable once loaded; a reload builds a new one.
 * Strings in it are owned by it and freed by config_free().
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Bounds on the configuration file itself. */
#define CONFIG_LINE_MAX		8192	/* after joining continuation lines */
#define CONFIG_INCLUDE_DEPTH_MAX	16
#define CONFIG_MACROS_MAX	1024
#define CONFIG_DEFINES_MAX	10	/* -D on the command line, as Exim */
#define CONFIG_IFDEF_DEPTH_MAX	10	/* nested .ifdef, as Exim 4.96 */
#define CONFIG_LIST_ITEM_MAX	1024	/* one item of a list option */
#define CONFIG_TIMELIST_MAX	10	/* times in a time list option */

enum msgid_format {
	MSGID_FORMAT_CURRENT,	/* 23 characters, Exim 4.97 and later */
	MSGID_FORMAT_CLASSIC,	/* 16 characters, Exim 4.96 and earlier */
};

enum config_list_kind {
	CONFIG_HOSTLIST,
	CONFIG_DOMAINLIST,
	CONFIG_ADDRESSLIST,
	CONFIG_LOCALPARTLIST,
};

struct config_named_list {
	enum config_list_kind kind;
	char *name;
	char *value;			/* raw list text, Exim list syntax */
	struct config_named_list *next;
};

/* One line of the "begin retry" section, kept as text until the retry
 * rules are parsed by the delivery code. */
struct config_retry_rule {
	char *text;
	char *file;
	int line;
};

/* A list of times in seconds, in increasing order (Exim's "time list"). */
struct config_timelist {
	int values[CONFIG_TIMELIST_MAX];
	size_t count;
};

/*
 * String and list options are never NULL once loaded; an empty string
 * means the option is unset and its documented fallback applies.
 */
struct config {
	char *config_file;		/* path of the main file in use */

	/* Options with Exim's names and meanings. */
	char *primary_hostname;
	char *qualify_domain;
	char *qualify_recipient;
	char *local_interfaces;		/* Exim list of addresses */
	char *daemon_smtp_ports;	/* Exim list of ports or service names */
	char *spool_directory;
	bool split_spool_directory;
	char *log_file_path;		/* Exim list: path with %s, or syslog */
	char *log_selector;
	int64_t message_size_limit;	/* bytes, 0 = no limit */
	char *exim_user;
	char *exim_group;
	char *admin_groups;		/* Exim list of group names */
	char *trusted_users;		/* Exim list of user names or uids */
	char *trusted_groups;		/* Exim list of group names or gids */
	char *untrusted_set_sender;	/* Exim address list */
	char *pid_file_path;
	enum msgid_format message_id_format;
	struct config_timelist delay_warning;	/* seconds; 0 alone = never */
	/* Bounces and frozen messages. */
	char *dsn_from;			/* "" for the default */
	bool bounce_return_message;
	int64_t bounce_return_size_limit;	/* bytes, 0 = no limit */
	int ignore_bounce_errors_after;	/* seconds */
	int timeout_frozen_after;	/* seconds, 0 = never */

	/* Bounds on SMTP clients, with Exim's names and meanings. A count
	 * or time of 0 means no limit, except where the option's help text
	 * gives another meaning. */
	bool allow_domain_literals;
	int check_log_inodes;
	int64_t check_log_space;	/* bytes */
	int check_spool_inodes;
	int64_t check_spool_space;	/* bytes */
	int header_line_maxsize;	/* bytes of one header field */
	int header_maxsize;		/* bytes of the header section */
	int received_headers_max;
	int recipients_max;		/* per message */
	int smtp_accept_max;		/* concurrent connections */
	int smtp_accept_max_per_connection;	/* messages */
	int smtp_accept_max_per_host;	/* concurrent connections */
	int smtp_accept_reserve;	/* of smtp_accept_max */
	char *smtp_reserve_hosts;	/* Exim host list */
	bool smtp_enforce_sync;
	int smtp_max_synprot_errors;
	int smtp_max_unknown_commands;
	int smtp_receive_timeout;	/* seconds */

	/* sluice's own options. */
	char *lua_policy;
	char *lua_path;			/* Exim list of module folders */
	int64_t lua_memory_limit;	/* bytes per Lua state */
	int lua_time_limit;		/* milliseconds per handler call */
	char *day_rollover;		/* "HH:MM [+HHMM]" of policy day counts */
	int policy_table_max_entries;	/* per shared policy table */
	char *dns_servers;		/* Exim list of resolver addresses */
	int dns_port;
	char *smarthost;		/* Exim list of host[:port] */
	int delivery_port;
	int smtp_command_timeout;	/* seconds; 0: smtp_receive_timeout */
	int smtp_max_session_time;	/* seconds */

	/* Outbound delivery, with the names of Exim's smtp transport
	 * options where the meaning is the same; times in seconds. */
	bool allow_mx_to_ip;
	int connect_timeout;
	int greeting_timeout;		/* sluice's own */
	int command_timeout;
	int data_timeout;
	int final_timeout;
	int connection_max_messages;	/* 0: no limit */
	int connection_idle_timeout;	/* sluice's own */
	int max_rcpt;			/* per transaction; 0: no limit */
	int outbound_connections_max;	/* sluice's own; 0: no limit */
	int outbound_connections_max_per_host;	/* sluice's own */
	int delivery_attempts_max;	/* sluice's own */
	char *egress_sources;		/* sluice's own: Exim list of
					 * ip[/ehlo-name] */
	char *hosts_avoid_tls;		/* Exim host lists */
	char *hosts_require_tls;
	bool tls_tempfail_tryclear;
	char *remote_tls_verify_certificates;	/* "system" or a path */

	/* TLS of the SMTP server, with Exim's option names. */
	char *tls_advertise_hosts;	/* Exim host list */
	char *tls_certificate;		/* Exim list of PEM files */
	char *tls_privatekey;		/* one key per certificate */
	char *tls_require_ciphers;	/* OpenSSL cipher list (TLS 1.2) */
	char *tls_on_connect_ports;	/* Exim list of ports */
	char *tls_verify_hosts;		/* Exim host list: certificate required */
	char *tls_try_verify_hosts;	/* Exim host list: certificate asked for */
	char *tls_verify_certificates;	/* "system" or a path */
	char *tls_sni_certificates;	/* "name cert [key]" list, for SNI */

	char *chunking_advertise_hosts;	/* Exim host list */
	char *dsn_advertise_hosts;	/* Exim host list */
	char *smtputf8_advertise_hosts;	/* Exim host list */
	bool smtp_enhanced_status_codes;	/* RFC 2034 codes on replies */
	char *submission_ports;		/* list of ports: AUTH required */

	/* AUTH on the SMTP server. */
	char *auth_passwd_file;		/* "" for no AUTH */
	char *auth_advertise_hosts;	/* Exim host list */
	char *auth_plaintext_hosts;	/* sluice's own host list */

	struct config_named_list *named_lists;
	struct config_retry_rule *retry_rules;
	size_t retry_rule_count;
};

/*
 * Loads path, with defines ("NAME" or "NAME=value", from -D) overriding
 * macros of the same name. Returns 0 with *out set, or -1 with *error set
 * to "FILE:LINE: what is wrong" (the caller frees it). On error *out still
 * holds what was read before the error, with defaults elsewhere, so the
 * caller can find the panic log; the caller frees it too.
 */
int config_load(const char *path, const char *const *defines,
    size_t define_count, struct config **out, char **error);
/* Accepts NULL. */
void config_free(struct config *config);

/*
 * Prints options as "exim -bP" does: all of them when name is NULL, else
 * the one named (also "config_file" and "+listname"). value_only drops the
 * "name = " part, as -n does. Returns 0, or -1 after printing
 * "<name> is not a known option" to out when name is unknown.
 */
int config_print(FILE *out, const struct config *config, const char *name,
    bool value_only);

/* Prints every option with its type, default and meaning, for operators;
 * the option table of doc/config.md follows this output. */
void config_print_help(FILE *out);

/* Returns the raw value of a named list, or NULL if it is not defined. */
const char *config_named_list(const struct config *config,
    enum config_list_kind kind, const char *name);

/*
 * Iterates over an Exim list: colon-separated, "::" for a literal colon,
 * "<c" at the start to change the separator, surrounding white space
 * trimmed. Each call stores the next item in buf and returns it, or NULL
 * at the end. An item longer than size-1 is an error: it returns NULL
 * and sets iter->error.
 */
struct config_list_iter {
	const char *next;
	char separator;
	bool error;
};
void config_list_init(struct config_list_iter *iter, const char *list);
char *config_list_next(struct config_list_iter *iter, char *buf, size_t size);

/*
 * Parsers and formatters of Exim's value syntax. A time is one or more <number><unit> with units s, m, h, d
 * and w ("1h30m"), at most INT_MAX seconds; a bare number is invalid, as
 * in Exim. A size is a number (decimal, 0x hex, or octal with a leading
 * 0) with an optional K, M or G suffix (powers of 1024), and not
 * negative. Each returns 0, or -1 for anything else.
 */
int config_parse_time(const char *s, int *seconds);
int config_parse_size(const char *s, int64_t *bytes);
/* Parses an integer as a size but also takes a sign ("-5", "+2K"). */
int config_parse_integer(const char *s, int64_t *out);
/* Formats seconds as Exim prints a time ("1w2d", "1h30m", "0s"). */
void config_format_time(int seconds, char *buf, size_t size);
/* Formats bytes with the largest of G, M and K that divides it ("2M" for
 * 2048K), else as a plain number. Exim prints its integer options the
 * same way but has no G ("1024M"). */
void config_format_size(int64_t bytes, char *buf, size_t size);

#endif
