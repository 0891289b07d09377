/*
 * smtp_auth.h - checking a user name and password against a password
 * file in the format of Debian's Exim packages (/etc/exim4/passwd):
 *
 *   user:crypted-password[:cleartext-password]
 *
 * one entry a line, '#' comments and blank lines skipped, the user name
 * matched without case as Exim's lsearch does. The crypted password is
 * anything crypt(3) understands (yescrypt, SHA-512, bcrypt, ...). The
 * third field is for CRAM-MD5, which sluice does not offer; it is never
 * read into memory beyond the line, and never logged.
 *
 * A check runs crypt_r() on a thread of its own, since modern hashes take
 * milliseconds, and reports to the loop thread through an event. The SMTP
 * side of AUTH (RFC 4954) is in smtp_auth.c with the other session code.
 *
 * Thread use: smtp_auth_check_start() on the loop thread; the callback
 * runs there too.
 */
#ifndef SLUICE_SMTP_AUTH_H
#define SLUICE_SMTP_AUTH_H

#include <stddef.h>

struct event_base;

/* Maximum lengths of the user name and password taken from a client. */
#define SMTP_AUTH_USER_MAX	255
#define SMTP_AUTH_PASSWORD_MAX	512
/* Checks running at once; more are refused with a temporary error. */
#define SMTP_AUTH_CHECKS_MAX	32

enum smtp_auth_result {
	SMTP_AUTH_OK,		/* the password matches */
	SMTP_AUTH_BAD,		/* unknown user or wrong password */
	SMTP_AUTH_ERROR,	/* the file cannot be read: try later */
};

/* Called on the loop thread with the result; error is set (borrowed)
 * only for SMTP_AUTH_ERROR. */
typedef void (*smtp_auth_done_fn)(void *arg, enum smtp_auth_result result,
    const char *error);

/*
 * Starts checking user and password (copied, then wiped) against the
 * file at path. done is called later on base's loop, exactly once.
 * Returns 0, or -1 when SMTP_AUTH_CHECKS_MAX checks are running or no
 * thread can be started (done is then not called).
 */
int smtp_auth_check_start(struct event_base *base, const char *path,
    const char *user, const char *password, smtp_auth_done_fn done,
    void *arg);

/*
 * Checks user and password against the file at path on the calling
 * thread. Returns the result, with *error set (caller frees) for
 * SMTP_AUTH_ERROR.
 */
enum smtp_auth_result smtp_auth_check(const char *path, const char *user,
    const char *password, char **error);

/*
 * Decodes base64 text (RFC 4648, padding required) into out of size
 * bytes, NUL-terminated. Returns the decoded length, or -1 for invalid
 * text or a result that does not fit.
 */
long smtp_auth_base64_decode(const char *text, char *out, size_t size);

#endif
