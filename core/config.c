/*
 * config.c - options of sluice.conf: the option table, option values,
 * sections and named lists (see config.h).
 *
 * core/config_reader.c turns the files into logical lines (includes,
 * conditionals, macros, continuations), this file gives each line its
 * meaning, and core/config_print.c prints the result for -bP. Every
 * option is one row of config_options[]: name, type, field, default and
 * help text. Defaults are text parsed by the same code as a setting in
 * the file, so a default can never hold a value that the file could not.
 *
 * Value syntax follows Exim 4.96 as observed with the Debian 12 binary:
 * booleans bare or "= true|false|yes|no" with "no_" and "not_" prefixes;
 * integers, sizes and times as in core/config_value.c; quoted strings
 * with backslash escapes. Exim words its errors differently; sluice
 * reports "FILE:LINE: what is wrong".
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "config.h"
#include "config_reader.h"
#include "config_table.h"
#include "util.h"

/* State of one config_load() call. */
struct config_parser {
	struct config *config;
	const char *file;		/* position of the current line */
	int line;
	bool in_retry;
	char *error;
};

static bool config_check_port(const char *item, const char **expected);
static bool config_check_address(const char *item, const char **expected);
static bool config_check_egress_source(const char *item,
    const char **expected);

#define FIELD(name) offsetof(struct config, name)

/* Sorted by name: -bP prints in this order. */
const struct config_option config_options[] = {
	{ "admin_groups", CONFIG_TYPE_LIST, FIELD(admin_groups),
	    "", false, 0, 0, NULL,
	    "groups whose members are admin users besides root, exim_user "
	    "and the members of exim_group: they may list the queue and act "
	    "on messages" },
	{ "allow_domain_literals", CONFIG_TYPE_BOOL,
	    FIELD(allow_domain_literals), "false", false, 0, 0, NULL,
	    "accept addresses whose domain is an IP address literal, such as "
	    "user@[192.0.2.1]; when false, MAIL and RCPT reject them with 501" },
	{ "allow_mx_to_ip", CONFIG_TYPE_BOOL, FIELD(allow_mx_to_ip),
	    "false", false, 0, 0, NULL,
	    "use an MX record whose target is an IP address instead of a "
	    "host name (RFC 5321 forbids it); false treats such a host as "
	    "having no address" },
	{ "auth_advertise_hosts", CONFIG_TYPE_LIST,
	    FIELD(auth_advertise_hosts), "*", false, 0, 0, NULL,
	    "host list of the clients offered AUTH (inside TLS, unless also "
	    "in auth_plaintext_hosts)" },
	{ "auth_passwd_file", CONFIG_TYPE_STRING, FIELD(auth_passwd_file),
	    "", false, 0, 0, NULL,
	    "password file for AUTH PLAIN and LOGIN in the format of Debian's "
	    "/etc/exim4/passwd (user:crypted-password[:cleartext]); empty "
	    "offers no AUTH. It must be readable by exim_user" },
	{ "auth_plaintext_hosts", CONFIG_TYPE_LIST,
	    FIELD(auth_plaintext_hosts), "", false, 0, 0, NULL,
	    "host list of the clients offered AUTH without TLS" },
	{ "bounce_return_message", CONFIG_TYPE_BOOL,
	    FIELD(bounce_return_message), "true", false, 0, 0, NULL,
	    "return the failed message (or its header section for RET=HDRS) "
	    "in the last part of a bounce" },
	{ "bounce_return_size_limit", CONFIG_TYPE_SIZE,
	    FIELD(bounce_return_size_limit), "100K", false, 0, 0, NULL,
	    "bytes of the failed message's body that a bounce returns at "
	    "most; the text part says when it was cut; 0 for no limit" },
	{ "check_log_inodes", CONFIG_TYPE_INT, FIELD(check_log_inodes),
	    "100", false, 0, INT_MAX, NULL,
	    "free inodes the log directory must keep: below it, MAIL gets "
	    "452; 0 for no check" },
	{ "check_log_space", CONFIG_TYPE_SIZE, FIELD(check_log_space),
	    "10M", false, 0, 0, NULL,
	    "free bytes the log directory must keep: below it, MAIL gets "
	    "452; 0 for no check" },
	{ "check_spool_inodes", CONFIG_TYPE_INT, FIELD(check_spool_inodes),
	    "100", false, 0, INT_MAX, NULL,
	    "free inodes the spool directory must keep: below it, MAIL gets "
	    "452; 0 for no check" },
	{ "check_spool_space", CONFIG_TYPE_SIZE, FIELD(check_spool_space),
	    "10M", false, 0, 0, NULL,
	    "free bytes the spool directory must keep, in addition to the "
	    "size that MAIL declares with SIZE=: below it, MAIL gets 452; 0 "
	    "and no SIZE= for no check" },
	{ "chunking_advertise_hosts", CONFIG_TYPE_LIST,
	    FIELD(chunking_advertise_hosts), "*", false, 0, 0, NULL,
	    "host list of the clients offered CHUNKING (BDAT, RFC 3030)" },
	{ "command_timeout", CONFIG_TYPE_TIME, FIELD(command_timeout),
	    "5m", false, 0, 0, NULL,
	    "time a remote server may take to reply to each SMTP command "
	    "of a delivery" },
	{ "connect_timeout", CONFIG_TYPE_TIME, FIELD(connect_timeout),
	    "5m", false, 0, 0, NULL,
	    "time a TCP connection to a remote server may take to open" },
	{ "connection_idle_timeout", CONFIG_TYPE_TIME,
	    FIELD(connection_idle_timeout), "5s", false, 0, 0, NULL,
	    "time an outbound connection stays open without a message, "
	    "waiting for the next message to the same host from the same "
	    "source address; 0s closes it at once" },
	{ "connection_max_messages", CONFIG_TYPE_INT,
	    FIELD(connection_max_messages), "500", false, 0, 1000000, NULL,
	    "most messages delivered over one outbound SMTP connection; 0 "
	    "for no limit" },
	{ "daemon_smtp_ports", CONFIG_TYPE_LIST, FIELD(daemon_smtp_ports),
	    "smtp", true, 0, 0, config_check_port,
	    "ports the daemon listens on where local_interfaces gives no "
	    "port: numbers or service names" },
	{ "data_timeout", CONFIG_TYPE_TIME, FIELD(data_timeout),
	    "5m", false, 0, 0, NULL,
	    "time each block of message data may take to reach a remote "
	    "server" },
	{ "day_rollover", CONFIG_TYPE_STRING, FIELD(day_rollover),
	    "00:00", false, 0, 0, NULL,
	    "time of day at which the Lua policy's per-day counts start "
	    "again: \"HH:MM\", optionally followed by a zone offset such as "
	    "\"+0200\"; the default zone is UTC" },
	{ "delay_warning", CONFIG_TYPE_TIMELIST, FIELD(delay_warning),
	    "24h", false, 0, 0, NULL,
	    "times after arrival at which the sender of a message still "
	    "queued gets a delay warning, the last one repeating; 0s for "
	    "none" },
	{ "delivery_attempts_max", CONFIG_TYPE_INT,
	    FIELD(delivery_attempts_max), "500", false, 1, 100000, NULL,
	    "most messages in delivery at once; more that are due wait in "
	    "memory, highest queue class first, and need no file open" },
	{ "delivery_port", CONFIG_TYPE_INT, FIELD(delivery_port),
	    "25", false, 1, 65535, NULL,
	    "TCP port of remote SMTP servers that deliveries connect to" },
	{ "dns_port", CONFIG_TYPE_INT, FIELD(dns_port),
	    "53", false, 1, 65535, NULL,
	    "port of the servers in dns_servers" },
	{ "dns_servers", CONFIG_TYPE_LIST, FIELD(dns_servers),
	    "", false, 0, 0, config_check_address,
	    "IP addresses of the DNS resolvers to ask; empty uses the "
	    "system resolver configuration (/etc/resolv.conf)" },
	{ "dsn_advertise_hosts", CONFIG_TYPE_LIST,
	    FIELD(dsn_advertise_hosts), "", false, 0, 0, NULL,
	    "host list of the clients offered DSN (RFC 3461: NOTIFY, ORCPT, "
	    "RET and ENVID, stored in the spool as Exim stores them)" },
	{ "dsn_from", CONFIG_TYPE_STRING, FIELD(dsn_from),
	    "", false, 0, 0, NULL,
	    "From: field of bounces; empty uses \"Mail Delivery System "
	    "<Mailer-Daemon@qualify_domain>\"" },
	{ "egress_sources", CONFIG_TYPE_LIST, FIELD(egress_sources),
	    "", false, 0, 0, config_check_egress_source,
	    "local IP addresses that deliveries connect from, each with the "
	    "name to send in EHLO after a slash (ip/name; write IPv6 lists "
	    "with \"<;\"); unset lets the system choose and sends "
	    "primary_hostname" },
	{ "exim_group", CONFIG_TYPE_STRING, FIELD(exim_group),
	    "", false, 0, 0, NULL,
	    "group the daemon runs as after start-up; empty uses the primary "
	    "group of exim_user" },
	{ "exim_user", CONFIG_TYPE_STRING, FIELD(exim_user),
	    "sluice", false, 0, 0, NULL,
	    "user the daemon runs as after binding its ports; empty keeps "
	    "the user that started it (for development)" },
	{ "final_timeout", CONFIG_TYPE_TIME, FIELD(final_timeout),
	    "10m", false, 0, 0, NULL,
	    "time a remote server may take to reply to the dot that ends a "
	    "message" },
	{ "greeting_timeout", CONFIG_TYPE_TIME, FIELD(greeting_timeout),
	    "5m", false, 0, 0, NULL,
	    "time a remote server may take to send its greeting after the "
	    "connection opens" },
	{ "header_line_maxsize", CONFIG_TYPE_INT, FIELD(header_line_maxsize),
	    "0", false, 0, 65536, NULL,
	    "maximum size of one header field, in bytes with its "
	    "continuation lines; a larger one gets 552; 0 for the spool's "
	    "limit of 65536" },
	{ "header_maxsize", CONFIG_TYPE_INT, FIELD(header_maxsize),
	    "1048576", false, 0, 8 * 1024 * 1024, NULL,
	    "maximum size of the header section, in bytes; a larger one gets "
	    "552; 0 for the spool's limit of 8M" },
	{ "hosts_avoid_tls", CONFIG_TYPE_LIST, FIELD(hosts_avoid_tls),
	    "", false, 0, 0, NULL,
	    "host list of remote servers to which deliveries never start "
	    "TLS, even when offered" },
	{ "hosts_require_tls", CONFIG_TYPE_LIST, FIELD(hosts_require_tls),
	    "", false, 0, 0, NULL,
	    "host list of remote servers that deliveries reach only over "
	    "TLS: without it the host is deferred" },
	{ "ignore_bounce_errors_after", CONFIG_TYPE_TIME,
	    FIELD(ignore_bounce_errors_after), "10w", false, 0, 0, NULL,
	    "age after which a bounce that could not be delivered is given "
	    "up: it is thawed once and, if it fails again, discarded" },
	{ "local_interfaces", CONFIG_TYPE_LIST, FIELD(local_interfaces),
	    "<; 0.0.0.0 ; ::0", true, 0, 0, NULL,
	    "IP addresses the daemon listens on, each optionally with a port "
	    "(\"127.0.0.1.2525\" or \"[::1]:2525\")" },
	{ "log_file_path", CONFIG_TYPE_LIST, FIELD(log_file_path),
	    "", false, 0, 0, NULL,
	    "where the logs go: a path with %s for main, reject and panic, "
	    "and/or \"syslog\"; empty means <spool_directory>/log/%slog" },
	{ "log_selector", CONFIG_TYPE_STRING, FIELD(log_selector),
	    "", false, 0, 0, NULL,
	    "log line items to add (+name) or remove (-name), with Exim's "
	    "selector names" },
	{ "lua_memory_limit", CONFIG_TYPE_SIZE, FIELD(lua_memory_limit),
	    "64M", false, 0, 0, NULL,
	    "most memory the Lua policy's state may use, in bytes; a handler "
	    "that needs more fails and the client gets 451; 0 for no limit" },
	{ "lua_path", CONFIG_TYPE_LIST, FIELD(lua_path),
	    "", false, 0, 0, NULL,
	    "folders where the policy's require() finds modules; empty "
	    "means the policy file's folder, then the scripts that ship with "
	    "sluice" },
	{ "lua_policy", CONFIG_TYPE_STRING, FIELD(lua_policy),
	    "", false, 0, 0, NULL,
	    "path of the Lua policy script, relative to the folder of this "
	    "file unless absolute; empty runs no policy" },
	{ "lua_time_limit", CONFIG_TYPE_INT, FIELD(lua_time_limit),
	    "100", false, 1, 60000, NULL,
	    "time budget of one call of a Lua handler, in milliseconds; a "
	    "handler over it is stopped and the client gets 451" },
	{ "max_rcpt", CONFIG_TYPE_INT, FIELD(max_rcpt),
	    "100", false, 0, 100000, NULL,
	    "most recipients in one SMTP transaction of a delivery; more go "
	    "in further transactions on the same connection; 0 for no "
	    "limit" },
	{ "message_id_format", CONFIG_TYPE_MSGID_FORMAT,
	    FIELD(message_id_format), "current", false, 0, 0, NULL,
	    "form of new message ids: \"current\" (23 characters, Exim 4.97 "
	    "and later) or \"classic\" (16 characters, Exim 4.96 and earlier)" },
	{ "message_size_limit", CONFIG_TYPE_SIZE, FIELD(message_size_limit),
	    "50M", false, 0, 0, NULL,
	    "largest message accepted, in bytes (K, M and G multiply by "
	    "1024); 0 for no limit" },
	{ "outbound_connections_max", CONFIG_TYPE_INT,
	    FIELD(outbound_connections_max), "200", false, 0, 1000000, NULL,
	    "most outbound SMTP connections open at once, idle ones "
	    "included; deliveries past it wait; 0 for no limit" },
	{ "outbound_connections_max_per_host", CONFIG_TYPE_INT,
	    FIELD(outbound_connections_max_per_host), "10", false, 0,
	    1000000, NULL,
	    "most outbound SMTP connections open at once to one remote IP "
	    "address; deliveries past it wait; 0 for no limit" },
	{ "pid_file_path", CONFIG_TYPE_STRING, FIELD(pid_file_path),
	    "", false, 0, 0, NULL,
	    "file the daemon writes its process id to; empty means "
	    "<spool_directory>/exim-daemon.pid" },
	{ "policy_table_max_entries", CONFIG_TYPE_INT,
	    FIELD(policy_table_max_entries), "100000", false, 100, 100000000,
	    NULL,
	    "maximum entries of each of the Lua policy's shared tables; "
	    "beyond it the least recently used entry is evicted, except "
	    "that a full suppression table refuses new entries" },
	{ "primary_hostname", CONFIG_TYPE_STRING, FIELD(primary_hostname),
	    NULL, false, 0, 0, NULL,
	    "this host's name in SMTP greetings and Received: headers; empty "
	    "uses the node name from uname(2) as it is, with no DNS lookup" },
	{ "qualify_domain", CONFIG_TYPE_STRING, FIELD(qualify_domain),
	    NULL, false, 0, 0, NULL,
	    "domain added to local sender addresses without one; empty uses "
	    "primary_hostname" },
	{ "qualify_recipient", CONFIG_TYPE_STRING, FIELD(qualify_recipient),
	    NULL, false, 0, 0, NULL,
	    "domain added to local recipient addresses without one; empty "
	    "uses qualify_domain" },
	{ "received_headers_max", CONFIG_TYPE_INT,
	    FIELD(received_headers_max), "30", false, 1, 1000, NULL,
	    "maximum number of Received: header fields in a message; more is "
	    "taken as a mail loop and the message gets 550" },
	{ "recipients_max", CONFIG_TYPE_INT, FIELD(recipients_max),
	    "50000", false, 0, 100000, NULL,
	    "maximum number of recipients per message: each RCPT past it "
	    "gets 452 and the client may send them in another transaction; "
	    "0 for the spool's limit of 100000" },
	{ "remote_tls_verify_certificates", CONFIG_TYPE_STRING,
	    FIELD(remote_tls_verify_certificates), "system", false, 0, 0,
	    NULL,
	    "certificates that remote servers' TLS certificates are checked "
	    "against for CV= on mainlog: system for the system's trust "
	    "store, or a PEM file or hashed directory" },
	{ "smarthost", CONFIG_TYPE_LIST, FIELD(smarthost),
	    "", false, 0, 0, NULL,
	    "hosts that receive all outgoing mail instead of the MX hosts; "
	    "empty delivers by MX records" },
	{ "smtp_accept_max", CONFIG_TYPE_INT, FIELD(smtp_accept_max),
	    "20", false, 0, 1000000, NULL,
	    "maximum number of SMTP connections open at once; more get 421 "
	    "and are closed; 0 for no limit" },
	{ "smtp_accept_max_per_connection", CONFIG_TYPE_INT,
	    FIELD(smtp_accept_max_per_connection), "1000", false, 0,
	    1000000, NULL,
	    "maximum number of messages in one SMTP connection; the next MAIL "
	    "gets 421 and the connection is closed; 0 for no limit" },
	{ "smtp_accept_max_per_host", CONFIG_TYPE_INT,
	    FIELD(smtp_accept_max_per_host), "0", false, 0, 1000000, NULL,
	    "maximum number of SMTP connections open at once from one IP "
	    "address; more get 421 and are closed; 0 for no limit" },
	{ "smtp_accept_reserve", CONFIG_TYPE_INT, FIELD(smtp_accept_reserve),
	    "0", false, 0, 1000000, NULL,
	    "connections out of smtp_accept_max kept for the hosts in "
	    "smtp_reserve_hosts" },
	{ "smtp_command_timeout", CONFIG_TYPE_TIME,
	    FIELD(smtp_command_timeout), "0s", false, 0, 0, NULL,
	    "time an SMTP client may take to send each command; 0s uses "
	    "smtp_receive_timeout" },
	{ "smtp_enforce_sync", CONFIG_TYPE_BOOL, FIELD(smtp_enforce_sync),
	    "true", false, 0, 0, NULL,
	    "reject a client that sends before the greeting (554 SMTP "
	    "synchronization error)" },
	{ "smtp_enhanced_status_codes", CONFIG_TYPE_BOOL,
	    FIELD(smtp_enhanced_status_codes), "false", false, 0, 0, NULL,
	    "offer ENHANCEDSTATUSCODES (RFC 2034) and put RFC 3463 codes on "
	    "the SMTP server's replies after EHLO; Exim has no such option "
	    "and sends none" },
	{ "smtp_max_session_time", CONFIG_TYPE_TIME,
	    FIELD(smtp_max_session_time), "1h", false, 0, 0, NULL,
	    "maximum time an SMTP connection may stay open, however active; "
	    "then it gets 421 and is closed; 0s for no limit" },
	{ "smtp_max_synprot_errors", CONFIG_TYPE_INT,
	    FIELD(smtp_max_synprot_errors), "3", false, 0, 1000, NULL,
	    "syntax or protocol errors an SMTP client may make; the next one "
	    "closes the connection" },
	{ "smtp_max_unknown_commands", CONFIG_TYPE_INT,
	    FIELD(smtp_max_unknown_commands), "3", false, 0, 1000, NULL,
	    "unrecognized commands an SMTP client may send; the next one "
	    "closes the connection" },
	{ "smtp_receive_timeout", CONFIG_TYPE_TIME,
	    FIELD(smtp_receive_timeout), "5m", false, 0, 0, NULL,
	    "time an SMTP client may take to send each command (unless "
	    "smtp_command_timeout is set) and each block of message data; 0s "
	    "for no limit" },
	{ "smtp_reserve_hosts", CONFIG_TYPE_LIST, FIELD(smtp_reserve_hosts),
	    "", false, 0, 0, NULL,
	    "host list of the clients that may use the connections kept by "
	    "smtp_accept_reserve" },
	{ "smtputf8_advertise_hosts", CONFIG_TYPE_LIST,
	    FIELD(smtputf8_advertise_hosts), "*", false, 0, 0, NULL,
	    "host list of the clients offered SMTPUTF8 (RFC 6531: UTF-8 in "
	    "addresses when MAIL carries SMTPUTF8)" },
	{ "split_spool_directory", CONFIG_TYPE_BOOL,
	    FIELD(split_spool_directory), "false", false, 0, 0, NULL,
	    "spread spool files over up to 62 subdirectories of input/, "
	    "named by the sixth character of the message id" },
	{ "spool_directory", CONFIG_TYPE_STRING, FIELD(spool_directory),
	    "/var/spool/sluice", true, 0, 0, NULL,
	    "directory of the queue (input/), message logs (msglog/), hints "
	    "databases (hints/) and, by default, the logs" },
	{ "submission_ports", CONFIG_TYPE_LIST, FIELD(submission_ports),
	    "", false, 0, 0, config_check_port,
	    "ports, also listed in daemon_smtp_ports, where clients must "
	    "authenticate before MAIL (530) and messages without Date: or "
	    "Message-ID: get them added" },
	{ "timeout_frozen_after", CONFIG_TYPE_TIME,
	    FIELD(timeout_frozen_after), "0s", false, 0, 0, NULL,
	    "age after which a frozen message is cancelled, with a bounce "
	    "unless it is one itself; 0s for never" },
	{ "tls_advertise_hosts", CONFIG_TYPE_LIST, FIELD(tls_advertise_hosts),
	    "*", false, 0, 0, NULL,
	    "host list of the clients that are offered STARTTLS, when "
	    "tls_certificate is set" },
	{ "tls_certificate", CONFIG_TYPE_LIST, FIELD(tls_certificate),
	    "", false, 0, 0, NULL,
	    "PEM files with the server's certificate chain (an RSA and an "
	    "ECDSA one may be listed); empty offers no TLS. Read at start and "
	    "on reload, after privileges are dropped: exim_user must be able "
	    "to read them" },
	{ "tls_on_connect_ports", CONFIG_TYPE_LIST,
	    FIELD(tls_on_connect_ports), "", false, 0, 0, config_check_port,
	    "listening ports where TLS starts at once, without STARTTLS "
	    "(465 for submissions, RFC 8314)" },
	{ "tls_privatekey", CONFIG_TYPE_LIST, FIELD(tls_privatekey),
	    "", false, 0, 0, NULL,
	    "PEM files with the private keys of tls_certificate, in the same "
	    "order; empty reads each key from its certificate file" },
	{ "tls_require_ciphers", CONFIG_TYPE_STRING,
	    FIELD(tls_require_ciphers), "", false, 0, 0, NULL,
	    "OpenSSL cipher list for TLS 1.2 sessions of the SMTP server; "
	    "empty uses OpenSSL's default" },
	{ "tls_sni_certificates", CONFIG_TYPE_LIST,
	    FIELD(tls_sni_certificates), "", false, 0, 0, NULL,
	    "certificates chosen by the name a client asks for with SNI: "
	    "items \"name certificate [key]\" (name may be *.domain; paths "
	    "without spaces); other names get tls_certificate. Read at start "
	    "and on reload" },
	{ "tls_tempfail_tryclear", CONFIG_TYPE_BOOL,
	    FIELD(tls_tempfail_tryclear), "true", false, 0, 0, NULL,
	    "deliver in clear to a host outside hosts_require_tls after a "
	    "4xx to STARTTLS or a failed TLS handshake; false defers the "
	    "host instead" },
	{ "tls_try_verify_hosts", CONFIG_TYPE_LIST,
	    FIELD(tls_try_verify_hosts), "", false, 0, 0, NULL,
	    "host list of the clients asked for a certificate, which is "
	    "checked against tls_verify_certificates; a missing or invalid "
	    "one is only logged (CV=no)" },
	{ "tls_verify_certificates", CONFIG_TYPE_STRING,
	    FIELD(tls_verify_certificates), "system", false, 0, 0, NULL,
	    "what client certificates are checked against: system for the "
	    "system's trust store, or a PEM file or a directory hashed with "
	    "openssl rehash" },
	{ "tls_verify_hosts", CONFIG_TYPE_LIST, FIELD(tls_verify_hosts),
	    "", false, 0, 0, NULL,
	    "host list of the clients that must present a certificate that "
	    "verifies against tls_verify_certificates, or the TLS handshake "
	    "fails" },
	{ "trusted_groups", CONFIG_TYPE_LIST, FIELD(trusted_groups),
	    "", false, 0, 0, NULL,
	    "groups (names or numbers) whose members, by primary or "
	    "supplementary group, are trusted for local submission: they may "
	    "set the envelope sender with -f and mark a message -N; root and "
	    "exim_user always are" },
	{ "trusted_users", CONFIG_TYPE_LIST, FIELD(trusted_users),
	    "", false, 0, 0, NULL,
	    "users (names or numbers) trusted for local submission: they may "
	    "set the envelope sender with -f and mark a message -N; root and "
	    "exim_user always are" },
	{ "untrusted_set_sender", CONFIG_TYPE_LIST,
	    FIELD(untrusted_set_sender), "", false, 0, 0, NULL,
	    "address list of envelope senders that untrusted local callers "
	    "may set with -f: items are *, local@domain with * or *suffix "
	    "as the local part, or a domain list item; unset allows only "
	    "the empty sender" },
};

const size_t config_option_count = ARRAY_SIZE(config_options);

const char *const config_list_kind_names[] = {
	[CONFIG_HOSTLIST] = "hostlist",
	[CONFIG_DOMAINLIST] = "domainlist",
	[CONFIG_ADDRESSLIST] = "addresslist",
	[CONFIG_LOCALPARTLIST] = "localpartlist",
};

/* Sections of Exim's configuration that sluice replaces by Lua hooks. */
static const char *const config_lua_sections[] = {
	"acl", "authenticators", "rewrite", "routers", "transports",
};

static int
config_fail(struct config_parser *parser, const char *fmt, ...)
    SLUICE_PRINTF(2, 3);

/* Records "FILE:LINE: message" and returns -1. */
static int
config_fail(struct config_parser *parser, const char *fmt, ...)
{
	va_list ap;
	char *message;

	va_start(ap, fmt);
	message = xvasprintf(fmt, ap);
	va_end(ap);
	free(parser->error);
	parser->error = xasprintf("%s:%d: %s", parser->file, parser->line,
	    message);
	free(message);
	return -1;
}

static void *
config_field(struct config *config, const struct config_option *option)
{
	return (char *)config + option->offset;
}

const struct config_option *
config_find_option(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(config_options); i++) {
		if (strcmp(config_options[i].name, name) == 0)
			return &config_options[i];
	}
	return NULL;
}

static int
config_hex_value(char digit)
{
	if (isdigit((unsigned char)digit))
		return digit - '0';
	return tolower((unsigned char)digit) - 'a' + 10;
}

/*
 * Decodes a quoted value that starts at s, the opening quote. The escapes
 * are Exim's: \n \r \t \b \v \f, \ooo (octal, up to 3 digits) and \xhh
 * (hex, up to 2 digits). A backslash before any other character gives
 * that character. Only white space may follow the closing quote. Returns
 * the decoded text (the caller frees it), or NULL after recording an
 * error.
 */
static char *
config_unquote(struct config_parser *parser, const char *name, const char *s)
{
	char *out = xmalloc(strlen(s) + 1);
	size_t n = 0;
	const char *p = s + 1;

	while (*p != '"') {
		int c = (unsigned char)*p++;

		if (c == '\0') {
			config_fail(parser, "missing closing quote in the value "
			    "of %s", name);
			goto fail;
		}
		if (c == '\\') {
			c = (unsigned char)*p++;
			switch (c) {
			case '\0':
				config_fail(parser, "missing closing quote in the "
				    "value of %s", name);
				goto fail;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'b': c = '\b'; break;
			case 'v': c = '\v'; break;
			case 'f': c = '\f'; break;
			case 'x':
				if (!isxdigit((unsigned char)*p))
					break;	/* "\x" alone is an x */
				c = 0;
				for (int i = 0; i < 2 && isxdigit((unsigned char)*p);
				    i++, p++)
					c = c * 16 + config_hex_value(*p);
				break;
			default:
				if (c >= '0' && c <= '7') {
					c -= '0';
					for (int i = 0; i < 2 && *p >= '0' &&
					    *p <= '7'; i++, p++)
						c = c * 8 + (*p - '0');
					c &= 0xff;
				}
				break;
			}
			if (c == '\0') {
				config_fail(parser, "NUL character in the value of "
				    "%s", name);
				goto fail;
			}
		}
		out[n++] = (char)c;
	}
	out[n] = '\0';

	p++;
	while (isspace((unsigned char)*p))
		p++;
	if (*p != '\0') {
		config_fail(parser, "unexpected text \"%s\" after the quoted "
		    "value of %s", p, name);
		goto fail;
	}
	return out;

fail:
	free(out);
	return NULL;
}

/* ---- checks of list items ---- */

static bool
config_check_port(const char *item, const char **expected)
{
	unsigned long long port;

	*expected = "a port number from 1 to 65535 or a service name";
	if (isdigit((unsigned char)item[0]))
		return parse_uint(item, 65535, &port) == 0 && port > 0;
	if (!isalpha((unsigned char)item[0]))
		return false;
	for (const char *p = item; *p != '\0'; p++) {
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return false;
	}
	return true;
}

static bool
config_check_address(const char *item, const char **expected)
{
	unsigned char addr[16];

	*expected = "an IPv4 or IPv6 address";
	return inet_pton(AF_INET, item, addr) == 1 ||
	    inet_pton(AF_INET6, item, addr) == 1;
}

/* An egress_sources item: an IP address, optionally followed by "/" and
 * the host name to send in EHLO (letters, digits, '-', '_' and dots). */
static bool
config_check_egress_source(const char *item, const char **expected)
{
	char ip[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(item, '/');
	size_t len = slash != NULL ? (size_t)(slash - item) : strlen(item);

	*expected = "an IP address, optionally followed by /ehlo-name";
	if (len == 0 || len >= sizeof(ip))
		return false;
	memcpy(ip, item, len);
	ip[len] = '\0';
	if (!config_check_address(ip, expected)) {
		*expected = "an IP address, optionally followed by /ehlo-name";
		return false;
	}
	if (slash == NULL)
		return true;
	if (slash[1] == '\0' || strlen(slash + 1) > 255)
		return false;
	for (const char *p = slash + 1; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' &&
		    *p != '.')
			return false;
	return true;
}

/* Checks the length (and, for some options, the form) of each item. */
static int
config_check_list(struct config_parser *parser, const char *list_name,
    const char *value, config_item_check_fn check)
{
	struct config_list_iter iter;
	char item[CONFIG_LIST_ITEM_MAX + 1];
	const char *expected;

	config_list_init(&iter, value);
	while (config_list_next(&iter, item, sizeof(item)) != NULL) {
		if (check != NULL && !check(item, &expected))
			return config_fail(parser,
			    "invalid item \"%s\" in %s: expected %s", item,
			    list_name, expected);
	}
	if (iter.error)
		return config_fail(parser,
		    "list item longer than %d characters in %s",
		    CONFIG_LIST_ITEM_MAX, list_name);
	return 0;
}

/* ---- setting options ---- */

static int
config_set_timelist(struct config_parser *parser,
    const struct config_option *option, const char *value,
    struct config_timelist *list)
{
	struct config_timelist parsed = { .count = 0 };
	struct config_list_iter iter;
	char item[CONFIG_LIST_ITEM_MAX + 1];

	config_list_init(&iter, value);
	while (config_list_next(&iter, item, sizeof(item)) != NULL) {
		int seconds;

		if (config_parse_time(item, &seconds) < 0)
			return config_fail(parser,
			    "invalid time value \"%s\" for %s", item,
			    option->name);
		if (parsed.count == CONFIG_TIMELIST_MAX)
			return config_fail(parser,
			    "too many time values for %s (max %d)",
			    option->name, CONFIG_TIMELIST_MAX);
		if (parsed.count > 0 &&
		    seconds <= parsed.values[parsed.count - 1])
			return config_fail(parser,
			    "time values for %s must increase: \"%s\" is not "
			    "later than the one before", option->name, item);
		parsed.values[parsed.count++] = seconds;
	}
	if (iter.error)
		return config_fail(parser,
		    "list item longer than %d characters in %s",
		    CONFIG_LIST_ITEM_MAX, option->name);
	if (parsed.count == 0)
		return config_fail(parser, "missing time value for %s",
		    option->name);
	*list = parsed;
	return 0;
}

/* Sets a non-boolean option from the text after "=". */
static int
config_set_value(struct config_parser *parser,
    const struct config_option *option, const char *value)
{
	void *field = config_field(parser->config, option);
	int64_t number;
	char *text;

	switch (option->type) {
	case CONFIG_TYPE_STRING:
	case CONFIG_TYPE_LIST:
		if (value[0] == '"') {
			text = config_unquote(parser, option->name, value);
			if (text == NULL)
				return -1;
		} else {
			text = xstrdup(value);
		}
		if (option->required && text[0] == '\0') {
			free(text);
			return config_fail(parser, "empty value for %s",
			    option->name);
		}
		if (option->type == CONFIG_TYPE_LIST &&
		    config_check_list(parser, option->name, text,
		    option->check_item) < 0) {
			free(text);
			return -1;
		}
		free(*(char **)field);
		*(char **)field = text;
		return 0;

	case CONFIG_TYPE_INT:
		if (config_parse_integer(value, &number) < 0)
			return config_fail(parser,
			    "invalid integer value \"%s\" for %s", value,
			    option->name);
		if (number < option->min || number > option->max)
			return config_fail(parser,
			    "value %s for %s is out of range (%d to %d)", value,
			    option->name, option->min, option->max);
		*(int *)field = (int)number;
		return 0;

	case CONFIG_TYPE_SIZE:
		if (config_parse_size(value, &number) < 0)
			return config_fail(parser,
			    "invalid size value \"%s\" for %s", value,
			    option->name);
		*(int64_t *)field = number;
		return 0;

	case CONFIG_TYPE_TIME:
		if (config_parse_time(value, (int *)field) < 0)
			return config_fail(parser,
			    "invalid time value \"%s\" for %s", value,
			    option->name);
		return 0;

	case CONFIG_TYPE_TIMELIST:
		return config_set_timelist(parser, option, value, field);

	case CONFIG_TYPE_MSGID_FORMAT:
		if (strcmp(value, "current") == 0)
			*(enum msgid_format *)field = MSGID_FORMAT_CURRENT;
		else if (strcmp(value, "classic") == 0)
			*(enum msgid_format *)field = MSGID_FORMAT_CLASSIC;
		else
			return config_fail(parser,
			    "invalid value \"%s\" for %s: expected current or "
			    "classic", value, option->name);
		return 0;

	case CONFIG_TYPE_BOOL:
		break;
	}
	fatal_bug("option %s has no value parser", option->name);
}

static int
config_set_bool(struct config_parser *parser,
    const struct config_option *option, const char *name, bool negated,
    const char *rest)
{
	bool *field = config_field(parser->config, option);
	const char *value;

	if (*rest == '\0') {
		*field = !negated;
		return 0;
	}
	if (*rest != '=')
		return config_fail(parser, "unexpected text \"%s\" after %s",
		    rest, name);
	if (negated)
		return config_fail(parser,
		    "%s takes no value: write %s alone, or %s = false", name,
		    name, option->name);

	value = rest + 1;
	while (isspace((unsigned char)*value))
		value++;
	/* Exim takes "name =" with nothing after it as true. */
	if (*value == '\0' || strcasecmp(value, "true") == 0 ||
	    strcasecmp(value, "yes") == 0)
		*field = true;
	else if (strcasecmp(value, "false") == 0 ||
	    strcasecmp(value, "no") == 0)
		*field = false;
	else
		return config_fail(parser,
		    "invalid boolean value \"%s\" for %s: expected true, "
		    "false, yes or no", value, option->name);
	return 0;
}

/* Handles "name = value" and bare booleans. The name is the first
 * name_len bytes of line. */
static int
config_parse_option(struct config_parser *parser, const char *line,
    size_t name_len)
{
	char name[128];
	const struct config_option *option;
	const char *rest = line + name_len;
	const char *base = name;
	bool negated = false;

	if (name_len >= sizeof(name))
		return config_fail(parser, "unknown option \"%.*s\"",
		    (int)name_len, line);
	memcpy(name, line, name_len);
	name[name_len] = '\0';

	option = config_find_option(name);
	if (option == NULL && strncmp(name, "no_", 3) == 0) {
		base = name + 3;
		negated = true;
	} else if (option == NULL && strncmp(name, "not_", 4) == 0) {
		base = name + 4;
		negated = true;
	}
	if (negated) {
		option = config_find_option(base);
		if (option != NULL && option->type != CONFIG_TYPE_BOOL)
			return config_fail(parser,
			    "\"%s\": only a boolean option takes a no_ or not_ "
			    "prefix, and %s is not one", name, base);
	}
	if (option == NULL)
		return config_fail(parser, "unknown option \"%s\"", name);

	while (isspace((unsigned char)*rest))
		rest++;
	if (option->type == CONFIG_TYPE_BOOL)
		return config_set_bool(parser, option, name, negated, rest);

	if (*rest != '=')
		return config_fail(parser, "missing \"=\" after %s", name);
	rest++;
	while (isspace((unsigned char)*rest))
		rest++;
	return config_set_value(parser, option, rest);
}

/* Handles "hostlist NAME = value" and the other three kinds. */
static int
config_parse_named_list(struct config_parser *parser,
    enum config_list_kind kind, const char *rest)
{
	const char *keyword = config_list_kind_names[kind];
	struct config_named_list *list;
	const char *name = rest;
	size_t name_len = 0;
	char *list_name;
	int rc;

	while (isalnum((unsigned char)name[name_len]) || name[name_len] == '_')
		name_len++;
	if (name_len == 0)
		return config_fail(parser, "missing list name after %s",
		    keyword);
	rest = name + name_len;
	while (isspace((unsigned char)*rest))
		rest++;
	if (*rest != '=')
		return config_fail(parser, "missing \"=\" after %s %.*s",
		    keyword, (int)name_len, name);
	rest++;
	while (isspace((unsigned char)*rest))
		rest++;

	for (list = parser->config->named_lists; list != NULL;
	    list = list->next) {
		if (list->kind == kind && strlen(list->name) == name_len &&
		    strncmp(list->name, name, name_len) == 0)
			return config_fail(parser, "%s %.*s is already defined",
			    keyword, (int)name_len, name);
	}

	list_name = xasprintf("%s %.*s", keyword, (int)name_len, name);
	rc = config_check_list(parser, list_name, rest, NULL);
	free(list_name);
	if (rc < 0)
		return -1;

	list = xcalloc(1, sizeof(*list));
	list->kind = kind;
	list->name = xstrndup(name, name_len);
	list->value = xstrdup(rest);
	list->next = parser->config->named_lists;
	parser->config->named_lists = list;
	return 0;
}

static int
config_parse_begin(struct config_parser *parser, const char *section)
{
	if (strcmp(section, "retry") == 0) {
		if (parser->in_retry)
			return config_fail(parser,
			    "\"begin retry\" appears a second time");
		parser->in_retry = true;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(config_lua_sections); i++) {
		if (strcmp(section, config_lua_sections[i]) == 0)
			return config_fail(parser,
			    "\"begin %s\" is not supported: sluice expresses "
			    "routing, transports and ACLs as hooks of the Lua "
			    "policy named by lua_policy (see doc/lua-api.md)",
			    section);
	}
	if (*section == '\0')
		return config_fail(parser, "missing section name after begin");
	return config_fail(parser,
	    "unknown section \"%s\" (sluice reads only the main and retry "
	    "sections)", section);
}

static void
config_add_retry_rule(struct config_parser *parser, const char *line)
{
	struct config *config = parser->config;
	struct config_retry_rule *rule;

	config->retry_rules = xreallocarray(config->retry_rules,
	    config->retry_rule_count + 1, sizeof(*config->retry_rules));
	rule = &config->retry_rules[config->retry_rule_count++];
	rule->text = xstrdup(line);
	rule->file = xstrdup(parser->file);
	rule->line = parser->line;
}

/* Gives one logical line of the files its meaning. */
static int
config_parse_line(struct config_parser *parser, const char *line)
{
	size_t name_len = 0;
	const char *rest;

	while (isalnum((unsigned char)line[name_len]) || line[name_len] == '_')
		name_len++;
	rest = line + name_len;
	while (isspace((unsigned char)*rest))
		rest++;

	if (name_len == 5 && strncmp(line, "begin", 5) == 0 &&
	    (*rest == '\0' || isalpha((unsigned char)*rest)))
		return config_parse_begin(parser, rest);
	if (parser->in_retry) {
		config_add_retry_rule(parser, line);
		return 0;
	}
	if (isupper((unsigned char)line[0]))
		return config_fail(parser,
		    "invalid line \"%s\": a line starting with an upper-case "
		    "letter defines a macro (NAME = value)", line);
	if (name_len == 0)
		return config_fail(parser,
		    "expected an option setting (name = value), found \"%s\"",
		    line);

	for (size_t kind = 0; kind < CONFIG_LIST_KIND_COUNT;
	    kind++) {
		const char *keyword = config_list_kind_names[kind];

		if (strlen(keyword) == name_len &&
		    strncmp(line, keyword, name_len) == 0)
			return config_parse_named_list(parser,
			    (enum config_list_kind)kind, rest);
	}
	return config_parse_option(parser, line, name_len);
}

/* ---- defaults, loading and freeing ---- */

static void
config_set_defaults(struct config *config)
{
	struct config_parser parser = {
		.config = config,
		.file = "(default)",
		.line = 0,
	};

	for (size_t i = 0; i < ARRAY_SIZE(config_options); i++) {
		const struct config_option *option = &config_options[i];
		const char *text = option->default_text;

		if (text == NULL)
			text = "";	/* filled in by config_fill_computed() */
		if (option->type == CONFIG_TYPE_BOOL) {
			*(bool *)config_field(config, option) =
			    strcmp(text, "true") == 0;
			continue;
		}
		if (config_set_value(&parser, option, text) < 0)
			fatal_bug("bad default for %s: %s", option->name,
			    parser.error);
	}
}

/* Gives empty host names their fallback values. */
static void
config_fill_computed(struct config *config)
{
	if (config->primary_hostname[0] == '\0') {
		struct utsname name;

		/* NOTE: Exim also qualifies the name through the resolver,
		 * which may send DNS queries off the host. sluice keeps the
		 * node name as it is, so a host whose node name has no dot
		 * should set primary_hostname. */
		free(config->primary_hostname);
		if (uname(&name) == 0 && name.nodename[0] != '\0')
			config->primary_hostname = xstrdup(name.nodename);
		else
			config->primary_hostname = xstrdup("localhost");
	}
	if (config->qualify_domain[0] == '\0') {
		free(config->qualify_domain);
		config->qualify_domain = xstrdup(config->primary_hostname);
	}
	if (config->qualify_recipient[0] == '\0') {
		free(config->qualify_recipient);
		config->qualify_recipient = xstrdup(config->qualify_domain);
	}
}

int
config_load(const char *path, const char *const *defines,
    size_t define_count, struct config **out, char **error)
{
	struct config *config = xcalloc(1, sizeof(*config));
	struct config_parser parser = { .config = config };
	struct config_reader *reader = NULL;
	const char *line;
	int rc;

	config->config_file = xstrdup(path);
	config_set_defaults(config);
	*out = config;

	if (config_reader_open(path, defines, define_count, &reader,
	    &parser.error) < 0)
		goto fail;
	while ((rc = config_reader_next(reader, &line, &parser.file,
	    &parser.line, &parser.error)) > 0) {
		if (config_parse_line(&parser, line) < 0)
			goto fail;
	}
	if (rc < 0)
		goto fail;

	config_fill_computed(config);
	config_reader_free(reader);
	return 0;

fail:
	config_fill_computed(config);
	config_reader_free(reader);
	*error = parser.error;
	return -1;
}

void
config_free(struct config *config)
{
	struct config_named_list *list, *next;

	if (config == NULL)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(config_options); i++) {
		const struct config_option *option = &config_options[i];

		if (option->type == CONFIG_TYPE_STRING ||
		    option->type == CONFIG_TYPE_LIST)
			free(*(char **)config_field(config, option));
	}
	for (list = config->named_lists; list != NULL; list = next) {
		next = list->next;
		free(list->name);
		free(list->value);
		free(list);
	}
	for (size_t i = 0; i < config->retry_rule_count; i++) {
		free(config->retry_rules[i].text);
		free(config->retry_rules[i].file);
	}
	free(config->retry_rules);
	free(config->config_file);
	free(config);
}

const char *
config_named_list(const struct config *config, enum config_list_kind kind,
    const char *name)
{
	for (const struct config_named_list *list = config->named_lists;
	    list != NULL; list = list->next) {
		if (list->kind == kind && strcmp(list->name, name) == 0)
			return list->value;
	}
	return NULL;
}
