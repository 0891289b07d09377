/*
 * smtp_auth.c - AUTH PLAIN and LOGIN on the SMTP server (RFC 4954, 4616),
 * and the password file check they use (see smtp_auth.h).
 *
 * AUTH is offered when auth_passwd_file is set, to clients in
 * auth_advertise_hosts, and only inside TLS unless the client is in
 * auth_plaintext_hosts. While a check runs, or while the reply to a
 * failure is delayed, the session reads no further input, so pipelined
 * commands wait for the outcome. Each failure is logged in Exim's words
 * ("plain authenticator failed for ... 535 Incorrect authentication
 * data (set_id=user)"), which fail2ban's exim filter matches; the reply
 * to the n-th failure of a session comes n seconds late, and after
 * SMTP_AUTH_FAILURES_MAX of them the connection is closed.
 */
#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "log_line.h"
#include "match.h"
#include "smtp_auth.h"
#include "smtp_server_private.h"
#include "util.h"

/* Maximum length of a line of the password file. */
#define SMTP_AUTH_LINE_MAX		4096
/* Failures a session may have; the last one closes it. */
#define SMTP_AUTH_FAILURES_MAX		3
/* Upper bound of the delay before a failure's reply. */
#define SMTP_AUTH_DELAY_MAX_SEC		5
/* The decoded PLAIN response: authzid NUL authcid NUL password. */
#define SMTP_AUTH_DECODED_MAX		(2 * SMTP_AUTH_USER_MAX + \
	SMTP_AUTH_PASSWORD_MAX + 2)

#define SMTP_AUTH_REPLY_FAILED	"535 Incorrect authentication data"

/* Password file check */

/* Wipes a secret; the compiler may not drop it as a dead store. */
static void
smtp_auth_wipe(void *p, size_t len)
{
	explicit_bzero(p, len);
}

enum smtp_auth_result
smtp_auth_check(const char *path, const char *user, const char *password,
    char **error)
{
	enum smtp_auth_result result = SMTP_AUTH_BAD;
	struct crypt_data *cd = NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		*error = xasprintf("cannot open %s: %s", path, strerror(errno));
		return SMTP_AUTH_ERROR;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		char *colon, *crypted, *end;
		const char *hashed;

		if (len > SMTP_AUTH_LINE_MAX) {
			*error = xasprintf("%s: a line is longer than %d bytes",
			    path, SMTP_AUTH_LINE_MAX);
			result = SMTP_AUTH_ERROR;
			break;
		}
		if (line[0] == '#' || (colon = strchr(line, ':')) == NULL)
			continue;
		/* NOTE: an unknown user is answered without running crypt,
		 * so the reply time tells whether a user exists. */
		*colon = '\0';
		if (strcasecmp(line, user) != 0)
			continue;
		crypted = colon + 1;
		end = crypted + strcspn(crypted, ":\r\n");
		*end = '\0';
		/* An empty or locked ("!", "*") hash never matches. */
		if (crypted[0] == '\0' || crypted[0] == '!' || crypted[0] == '*')
			break;
		if (cd == NULL)
			cd = xcalloc(1, sizeof(*cd));
		hashed = crypt_r(password, crypted, cd);
		if (hashed != NULL && hashed[0] != '*' &&
		    strcmp(hashed, crypted) == 0)
			result = SMTP_AUTH_OK;
		break;
	}
	if (ferror(f) && result != SMTP_AUTH_ERROR) {
		*error = xasprintf("cannot read %s: %s", path, strerror(errno));
		result = SMTP_AUTH_ERROR;
	}
	fclose(f);
	if (line != NULL) {
		smtp_auth_wipe(line, cap);
		free(line);
	}
	if (cd != NULL) {
		smtp_auth_wipe(cd, sizeof(*cd));
		free(cd);
	}
	return result;
}

/* One check in flight. */
struct smtp_auth_job {
	struct event *done_event;	/* activated by the thread */
	char *path;
	char user[SMTP_AUTH_USER_MAX + 1];
	char password[SMTP_AUTH_PASSWORD_MAX + 1];
	enum smtp_auth_result result;
	char *error;
	smtp_auth_done_fn done;
	void *arg;
};

/* Checks running; changed on the loop thread only. */
static unsigned auth_checks_running;

static void *
smtp_auth_thread(void *arg)
{
	struct smtp_auth_job *job = arg;

	job->result = smtp_auth_check(job->path, job->user, job->password,
	    &job->error);
	smtp_auth_wipe(job->password, sizeof(job->password));
	event_active(job->done_event, EV_TIMEOUT, 0);
	return NULL;
}

static void
smtp_auth_job_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_auth_job *job = arg;

	auth_checks_running--;
	job->done(job->arg, job->result, job->error);
	event_free(job->done_event);
	free(job->error);
	free(job->path);
	free(job);
}

int
smtp_auth_check_start(struct event_base *base, const char *path,
    const char *user, const char *password, smtp_auth_done_fn done,
    void *arg)
{
	struct smtp_auth_job *job;
	pthread_attr_t attr;
	pthread_t thread;
	int rc;

	if (auth_checks_running >= SMTP_AUTH_CHECKS_MAX)
		return -1;
	job = xcalloc(1, sizeof(*job));
	job->path = xstrdup(path);
	strlcpy_s(job->user, user, sizeof(job->user));
	strlcpy_s(job->password, password, sizeof(job->password));
	job->done = done;
	job->arg = arg;
	job->done_event = event_new(base, -1, 0, smtp_auth_job_done_cb, job);
	if (job->done_event == NULL)
		fatalx("cannot create the event of a password check");

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&thread, &attr, smtp_auth_thread, job);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		smtp_auth_wipe(job->password, sizeof(job->password));
		event_free(job->done_event);
		free(job->path);
		free(job);
		return -1;
	}
	/* NOTE: a check still running when the daemon exits may touch its
	 * event after the loop is freed; checks take milliseconds, and
	 * shutdown does not wait for them. */
	auth_checks_running++;
	return 0;
}

/* Base64 */

static int
smtp_auth_base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long
smtp_auth_base64_decode(const char *text, char *out, size_t size)
{
	size_t len = strlen(text), n = 0;

	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		unsigned long bits;

		for (int j = 0; j < 4; j++) {
			char c = text[i + j];

			/* '=' only in the last group, and only at its end. */
			if (c == '=' && i + 4 == len && j >= 2 &&
			    (j == 3 || text[i + 3] == '=')) {
				v[j] = 0;
				pad++;
			} else if ((v[j] = smtp_auth_base64_value(c)) < 0) {
				return -1;
			}
		}
		bits = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) |
		    ((unsigned long)v[2] << 6) | (unsigned long)v[3];
		if (n + 3 - (size_t)pad + 1 > size)
			return -1;
		out[n++] = (char)(bits >> 16);
		if (pad < 2)
			out[n++] = (char)(bits >> 8 & 0xff);
		if (pad < 1)
			out[n++] = (char)(bits & 0xff);
	}
	if (size == 0)
		return -1;
	out[n] = '\0';
	return (long)n;
}

/* The SMTP side */

bool
smtp_auth_offers(struct smtp_session *s)
{
	const struct config *c = smtp_server.config;
	const struct sockaddr *peer = (const struct sockaddr *)&s->peer;
	char *error = NULL;
	int rc;

	if (c->auth_passwd_file == NULL || c->auth_passwd_file[0] == '\0' ||
	    !s->is_socket || s->auth_id[0] != '\0')
		return false;
	rc = match_hostlist(c, "auth_advertise_hosts", c->auth_advertise_hosts,
	    peer, &error);
	if (rc == 1 && !s->tls)
		rc = match_hostlist(c, "auth_plaintext_hosts",
		    c->auth_plaintext_hosts, peer, &error);
	if (rc < 0) {
		log_write(LOG_MAIN | LOG_PANIC, NULL, "AUTH not offered: %s",
		    error);
		free(error);
	}
	return rc == 1;
}

/* Ends the exchange and lets the session read input again. */
static void
smtp_auth_finish(struct smtp_session *s)
{
	s->auth_step = SMTP_AUTH_STEP_NONE;
	s->auth_busy = false;
	smtp_auth_wipe(s->auth_user, sizeof(s->auth_user));
}

static void
smtp_auth_delay_cb(void *arg)
{
	struct smtp_session *s = arg;

	smtp_auth_finish(s);
	if (s->auth_failures >= SMTP_AUTH_FAILURES_MAX) {
		smtp_server_reply_and_close(s, SMTP_AUTH_REPLY_FAILED);
		return;
	}
	smtp_server_reply(s, SMTP_AUTH_REPLY_FAILED);
	smtp_server_process(s);
}

static void
smtp_auth_failed(struct smtp_session *s)
{
	struct log_auth_failure f = { .authenticator = s->auth_mech,
	    .reply = SMTP_AUTH_REPLY_FAILED, .set_id = s->auth_user };
	unsigned delay;

	if (s->auth_user[0] == '\0')
		f.set_id = NULL;
	smtp_server_log_host(s, &f.host);
	log_line_auth_failure(&f);
	s->auth_busy = true;
	s->auth_failures++;
	delay = s->auth_failures < SMTP_AUTH_DELAY_MAX_SEC ?
	    s->auth_failures : SMTP_AUTH_DELAY_MAX_SEC;
	if (s->auth_timer == NULL)
		s->auth_timer = clock_timer_new(smtp_server.base,
		    smtp_auth_delay_cb, s);
	clock_timer_arm(s->auth_timer, (uint64_t)delay * 1000000);
}

static void
smtp_auth_done(void *arg, enum smtp_auth_result result, const char *error)
{
	struct smtp_session *s = arg;

	if (s->bev == NULL) {
		smtp_server_unref(s);	/* the check's reference */
		return;
	}
	switch (result) {
	case SMTP_AUTH_OK:
		strlcpy_s(s->auth_id, s->auth_user, sizeof(s->auth_id));
		s->authenticator = s->auth_mech;
		smtp_auth_finish(s);
		smtp_server_reply(s, "235 Authentication succeeded");
		smtp_server_process(s);
		break;
	case SMTP_AUTH_BAD:
		smtp_auth_failed(s);
		break;
	case SMTP_AUTH_ERROR:
		log_write(LOG_MAIN | LOG_PANIC, NULL, "%s authenticator: %s",
		    s->auth_mech, error);
		smtp_auth_finish(s);
		smtp_server_reply(s, "435 Unable to authenticate at present");
		smtp_server_process(s);
		break;
	}
	smtp_server_unref(s);	/* the check's reference; s may be gone */
}

/* Starts checking the password of s->auth_user. */
static void
smtp_auth_verify(struct smtp_session *s, const char *password)
{
	s->auth_busy = true;
	smtp_server_ref(s);
	if (smtp_auth_check_start(smtp_server.base,
	    smtp_server.config->auth_passwd_file, s->auth_user, password,
	    smtp_auth_done, s) < 0) {
		smtp_server_unref(s);
		smtp_auth_finish(s);
		smtp_server_reply(s, "435 Unable to authenticate at present");
	}
}

/* Decodes a client response; replies 501 and ends the exchange when it
 * is "*" or not base64. Returns the length, or -1. */
static long
smtp_auth_decode_response(struct smtp_session *s, const char *text,
    char *out, size_t size)
{
	long len;

	if (strcmp(text, "*") == 0) {
		smtp_auth_finish(s);
		smtp_server_reply(s, "501 Authentication cancelled");
		return -1;
	}
	if ((len = smtp_auth_base64_decode(text, out, size)) < 0) {
		smtp_auth_finish(s);
		smtp_server_error(s, SMTP_ERROR_SYNTAX, "501 Invalid base64 data");
		return -1;
	}
	return len;
}

/* PLAIN: authzid NUL authcid NUL password; an authzid other than the
 * authcid is refused, since no one may act for another. */
static void
smtp_auth_plain(struct smtp_session *s, const char *text)
{
	char buf[SMTP_AUTH_DECODED_MAX + 1];
	const char *authzid, *authcid, *password, *end;
	long len;

	if ((len = smtp_auth_decode_response(s, text, buf, sizeof(buf))) < 0)
		return;
	end = buf + len;
	authzid = buf;
	authcid = memchr(authzid, '\0', (size_t)len);
	password = authcid != NULL && authcid + 1 < end ?
	    memchr(authcid + 1, '\0', (size_t)(end - authcid - 1)) : NULL;
	if (password == NULL) {
		smtp_auth_wipe(buf, sizeof(buf));
		smtp_auth_finish(s);
		smtp_server_error(s, SMTP_ERROR_SYNTAX, "501 Invalid PLAIN "
		    "response: authzid, user and password must be separated by "
		    "NUL");
		return;
	}
	authcid++;
	password++;
	strlcpy_s(s->auth_user, authcid, sizeof(s->auth_user));
	if (strlen(authcid) > SMTP_AUTH_USER_MAX ||
	    strlen(password) > SMTP_AUTH_PASSWORD_MAX ||
	    (authzid[0] != '\0' && strcmp(authzid, authcid) != 0) ||
	    authcid[0] == '\0')
		smtp_auth_failed(s);
	else
		smtp_auth_verify(s, password);
	smtp_auth_wipe(buf, sizeof(buf));
}

/* LOGIN: the user name, then the password. */
static void
smtp_auth_login_user(struct smtp_session *s, const char *text)
{
	char buf[SMTP_AUTH_USER_MAX + 1];

	if (smtp_auth_decode_response(s, text, buf, sizeof(buf)) < 0)
		return;
	strlcpy_s(s->auth_user, buf, sizeof(s->auth_user));
	s->auth_step = SMTP_AUTH_STEP_LOGIN_PASSWORD;
	smtp_server_reply(s, "334 UGFzc3dvcmQ6");	/* "Password:" */
}

static void
smtp_auth_login_password(struct smtp_session *s, const char *text)
{
	char buf[SMTP_AUTH_PASSWORD_MAX + 1];

	if (smtp_auth_decode_response(s, text, buf, sizeof(buf)) < 0)
		return;
	if (s->auth_user[0] == '\0')
		smtp_auth_failed(s);
	else
		smtp_auth_verify(s, buf);
	smtp_auth_wipe(buf, sizeof(buf));
}

void
smtp_auth_line(struct smtp_session *s, const char *line)
{
	switch (s->auth_step) {
	case SMTP_AUTH_STEP_PLAIN:
		smtp_auth_plain(s, line);
		break;
	case SMTP_AUTH_STEP_LOGIN_USER:
		smtp_auth_login_user(s, line);
		break;
	case SMTP_AUTH_STEP_LOGIN_PASSWORD:
		smtp_auth_login_password(s, line);
		break;
	case SMTP_AUTH_STEP_NONE:
		fatal_bug("an AUTH response outside an exchange");
	}
}

void
smtp_auth_command(struct smtp_session *s, const char *arg)
{
	char mech[16];
	const char *initial;
	size_t len = strcspn(arg, " ");

	if (!s->auth_offered) {
		smtp_server_error(s, SMTP_ERROR_SYNTAX,
		    "503 AUTH command used when not advertised");
		return;
	}
	if (s->auth_id[0] != '\0') {
		smtp_server_error(s, SMTP_ERROR_SYNTAX, "503 Already "
		    "authenticated");
		return;
	}
	if (len == 0 || len >= sizeof(mech)) {
		smtp_server_error(s, SMTP_ERROR_SYNTAX,
		    "501 AUTH requires a mechanism");
		return;
	}
	memcpy(mech, arg, len);
	mech[len] = '\0';
	initial = arg + len;
	while (*initial == ' ')
		initial++;

	s->auth_user[0] = '\0';
	if (strcasecmp(mech, "PLAIN") == 0) {
		strlcpy_s(s->auth_mech, "plain", sizeof(s->auth_mech));
		s->auth_step = SMTP_AUTH_STEP_PLAIN;
		/* RFC 4954: "=" is an empty initial response. */
		if (initial[0] == '\0')
			smtp_server_reply(s, "334 ");
		else
			smtp_auth_plain(s, strcmp(initial, "=") == 0 ? "" :
			    initial);
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		strlcpy_s(s->auth_mech, "login", sizeof(s->auth_mech));
		s->auth_step = SMTP_AUTH_STEP_LOGIN_USER;
		if (initial[0] == '\0')
			smtp_server_reply(s, "334 VXNlcm5hbWU6");	/* "Username:" */
		else
			smtp_auth_login_user(s, initial);
	} else {
		smtp_server_error(s, SMTP_ERROR_SYNTAX,
		    "504 Unrecognized authentication type");
	}
}

void
smtp_auth_session_close(struct smtp_session *s)
{
	clock_timer_free(s->auth_timer);
	s->auth_timer = NULL;
	smtp_auth_wipe(s->auth_user, sizeof(s->auth_user));
}
