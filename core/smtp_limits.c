/*
 * smtp_limits.c - what bounds an SMTP client in time and number:
 * admission of connections (smtp_accept_max, smtp_accept_max_per_host,
 * smtp_accept_reserve with smtp_reserve_hosts), the early-talker check
 * (smtp_enforce_sync), the command and data timeouts and the whole-session
 * limit (smtp_max_session_time). Replies and log lines are Exim 4.96's
 * where Exim has the limit.
 *
 * These functions belong to core/smtp_server.c's sessions (see
 * smtp_server_private.h) and run on the event loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "log_line.h"
#include "match.h"
#include "smtp_server_private.h"
#include "util.h"

/* Time to wait for a client that does not read the last reply. */
#define SMTP_LIMITS_CLOSING_WAIT_SEC	60

static void smtp_limits_timeout_cb(void *arg);
static void smtp_limits_session_timer_cb(void *arg);

/* Admission */

/* Sends reply on a connection that is turned away before it gets a
 * session, and closes it. The reply fits any socket buffer, so one
 * non-blocking send() is enough. */
static void
smtp_limits_refuse(int fd, const char *ip, int port, const char *reply,
    const char *reason)
{
	struct log_host host = { .ip = ip, .port = port };
	char text[SMTP_LINE_MAX];
	int len;

	log_line_connection_refused(&host, reason);
	len = snprintf(text, sizeof(text), "%s\r\n", reply);
	if (send(fd, text, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_write(LOG_MAIN, NULL, "cannot send the refusal to [%s]: %s",
		    ip, strerror(errno));
	close(fd);
	smtp_server.stats.connections_refused++;
}

bool
smtp_limits_admit(int fd, const char *ip, int port)
{
	const struct config *c = smtp_server.config;

	if (c->smtp_accept_max > 0 &&
	    smtp_server_session_count() >= (size_t)c->smtp_accept_max) {
		smtp_limits_refuse(fd, ip, port, "421 Too many concurrent SMTP "
		    "connections; please try again later.",
		    "too many connections");
		return false;
	}
	if (c->smtp_accept_max_per_host > 0 &&
	    smtp_server_count_from(ip) >=
	    (size_t)c->smtp_accept_max_per_host) {
		smtp_limits_refuse(fd, ip, port, "421 Too many concurrent SMTP "
		    "connections from this IP address; please try again later.",
		    "too many connections from that IP address");
		return false;
	}
	return true;
}

bool
smtp_limits_check_reserve(struct smtp_session *s)
{
	const struct config *c = smtp_server.config;
	size_t connected = smtp_server_session_count();	/* s included */
	char *error = NULL;
	char reply[SMTP_LINE_MAX];
	int rc;

	if (c->smtp_accept_max <= 0 || c->smtp_accept_reserve <= 0 ||
	    connected + (size_t)c->smtp_accept_reserve <=
	    (size_t)c->smtp_accept_max)
		return true;
	rc = match_hostlist(c, "smtp_reserve_hosts", c->smtp_reserve_hosts,
	    (const struct sockaddr *)&s->peer, &error);
	if (rc == 1)
		return true;
	if (rc < 0) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "reserve check failed: %s",
		    error);
		free(error);
	}
	log_write(LOG_MAIN, NULL, "temporarily refused connection from [%s]: "
	    "not in reserve list: connected=%zu max=%d reserve=%d", s->peer_ip,
	    connected, c->smtp_accept_max, c->smtp_accept_reserve);
	snprintf(reply, sizeof(reply), "421 %s: Too many concurrent SMTP "
	    "connections; please try again later", c->primary_hostname);
	smtp_server_reply_and_close(s, reply);
	return false;
}

/* The early-talker check */

void
smtp_limits_sync_error(struct smtp_session *s, const char *input,
    size_t len)
{
	char host[SMTP_SERVER_HOST_TEXT_SIZE];
	char raw[SMTP_SERVER_EARLY_INPUT_LOG_MAX + 1];
	char shown[SMTP_SERVER_EARLY_INPUT_LOG_MAX * 4 + 16];

	if (len > SMTP_SERVER_EARLY_INPUT_LOG_MAX)
		len = SMTP_SERVER_EARLY_INPUT_LOG_MAX;
	/* A NUL would end the text early, so it is shown as '?'. */
	for (size_t i = 0; i < len; i++)
		raw[i] = input[i] != '\0' ? input[i] : '?';
	raw[len] = '\0';
	log_line_escape(shown, sizeof(shown), raw, len, LOG_ESCAPE_QUOTED);
	smtp_server_host_text(s, host, sizeof(host));
	log_write(LOG_MAIN | LOG_REJECT, NULL, "SMTP protocol synchronization "
	    "error (input sent without waiting for greeting): rejected "
	    "connection from H=%s input=\"%s\"", host, shown);
	smtp_server_reply_and_close(s, "554 SMTP synchronization error");
}

/* Timeouts */

void
smtp_limits_arm_timeout(struct smtp_session *s)
{
	const struct config *c = smtp_server.config;
	int seconds;

	/* -bh reads its input with blocking reads and runs no timers. */
	if (s->timer == NULL || smtp_server.host_checking)
		return;
	switch (s->state) {
	case SMTP_STATE_DATA:
		seconds = c->smtp_receive_timeout;
		break;
	case SMTP_STATE_COMMIT:
		/* The wait is for the spool, whose callback always comes. */
		seconds = 0;
		break;
	case SMTP_STATE_CLOSING:
		seconds = SMTP_LIMITS_CLOSING_WAIT_SEC;
		break;
	default:
		seconds = c->smtp_command_timeout > 0 ?
		    c->smtp_command_timeout : c->smtp_receive_timeout;
		break;
	}
	if (seconds > 0)
		clock_timer_arm(s->timer, (uint64_t)seconds * 1000000);
	else
		clock_timer_cancel(s->timer);
}

void
smtp_limits_start_timers(struct smtp_session *s, struct event_base *base)
{
	const struct config *c = smtp_server.config;

	s->timer = clock_timer_new(base, smtp_limits_timeout_cb, s);
	smtp_limits_arm_timeout(s);
	if (c->smtp_max_session_time > 0 && !smtp_server.host_checking) {
		s->session_timer = clock_timer_new(base,
		    smtp_limits_session_timer_cb, s);
		clock_timer_arm(s->session_timer,
		    (uint64_t)c->smtp_max_session_time * 1000000);
	}
}

static void
smtp_limits_timeout_cb(void *arg)
{
	struct smtp_session *s = arg;
	const char *hostname = smtp_server.config->primary_hostname;
	char host[SMTP_SERVER_HOST_TEXT_SIZE];
	char sender[ADDRESS_SIZE * 4];
	char reply[SMTP_LINE_MAX];

	smtp_server_host_text(s, host, sizeof(host));
	switch (s->state) {
	case SMTP_STATE_CLOSING:
		/* The client did not read the last reply. */
		smtp_server_close(s);	/* s may be gone */
		return;
	case SMTP_STATE_COMMIT:
		return;		/* not armed while the spool works */
	case SMTP_STATE_DATA:
		/* Exim 4.96's words for a data timeout. */
		log_line_escape(sender, sizeof(sender), s->tx->sender,
		    ADDRESS_MAX, LOG_ESCAPE_TEXT);
		log_write(LOG_MAIN, NULL, "SMTP data timeout (message abandoned) "
		    "on connection from %s F=<%s>", host, sender);
		snprintf(reply, sizeof(reply), "421 %s SMTP incoming data timeout "
		    "- closing connection.", hostname);
		break;
	default:
		log_write(LOG_MAIN, NULL, "SMTP command timeout on connection "
		    "from %s", host);
		snprintf(reply, sizeof(reply), "421 %s: SMTP command timeout - "
		    "closing connection", hostname);
		break;
	}
	smtp_server_reply_and_close(s, reply);
}

/* Ends a session that reached smtp_max_session_time. */
static void
smtp_limits_session_expired(struct smtp_session *s)
{
	char host[SMTP_SERVER_HOST_TEXT_SIZE];
	char limit[32];
	char reply[SMTP_LINE_MAX];

	smtp_server_host_text(s, host, sizeof(host));
	config_format_time(smtp_server.config->smtp_max_session_time, limit,
	    sizeof(limit));
	log_write(LOG_MAIN, NULL, "SMTP session time limit reached on "
	    "connection from %s: smtp_max_session_time=%s%s", host, limit,
	    s->state == SMTP_STATE_DATA ? " (message abandoned)" : "");
	snprintf(reply, sizeof(reply), "421 %s: session time limit reached - "
	    "closing connection", smtp_server.config->primary_hostname);
	smtp_server_reply_and_close(s, reply);
}

static void
smtp_limits_session_timer_cb(void *arg)
{
	struct smtp_session *s = arg;

	switch (s->state) {
	case SMTP_STATE_CLOSING:
		smtp_server_close(s);	/* s may be gone */
		return;
	case SMTP_STATE_COMMIT:
		/* The message is being stored: let the client have its
		 * reply, then close (smtp_limits_commit_done()). */
		s->session_expired = true;
		return;
	default:
		smtp_limits_session_expired(s);
		return;
	}
}

bool
smtp_limits_commit_done(struct smtp_session *s)
{
	if (!s->session_expired || s->bev == NULL)
		return false;
	smtp_limits_session_expired(s);
	return true;
}
