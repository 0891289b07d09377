/*
 * smtp_wire.h - the SMTP wire format as the client sees it: server
 * replies read line by line, the keywords of an EHLO reply, and message
 * text turned into its DATA form.
 *
 * These are pure functions with no I/O. core/smtp_client.c uses them;
 * the unit tests call them directly.
 */
#ifndef SLUICE_SMTP_WIRE_H
#define SLUICE_SMTP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on a server's reply. RFC 5321 section 4.5.3.1.5 allows 512
 * bytes per line; real servers send longer ones, so 2048 are accepted.
 * Text past SMTP_REPLY_TEXT_MAX is dropped but the reply still parses. */
#define SMTP_REPLY_LINE_MAX	2048	/* bytes per line, without CRLF */
#define SMTP_REPLY_LINES_MAX	100
#define SMTP_REPLY_TEXT_MAX	8192	/* bytes of one reply kept */

/* A reply being read, line by line. */
struct smtp_reply {
	int code;
	size_t line_count;
	bool complete;
	bool truncated;		/* text was cut at SMTP_REPLY_TEXT_MAX */
	size_t len;
	char text[SMTP_REPLY_TEXT_MAX + 1];	/* lines joined by '\n' */
};

void smtp_reply_init(struct smtp_reply *reply);

/*
 * Adds one line (without its line end) to a reply. Each line is three
 * digits (first 2 to 5, second 0 to 5) followed by '-' when more lines
 * follow, or by ' ' or nothing on the last line. Every line has the code
 * of the first. A NUL byte is kept as '?'. Returns 1 when the reply is
 * complete, 0 when more lines are needed, or -1 with *error set to a
 * constant description when the line breaks a rule or a bound.
 */
int smtp_reply_add_line(struct smtp_reply *reply, const char *line,
    size_t len, const char **error);

/* Extensions advertised in an EHLO reply. */
struct smtp_ehlo {
	bool size;
	uint64_t size_max;	/* 0: SIZE without a limit */
	bool pipelining;
	bool starttls;
	bool eight_bit_mime;
	bool chunking;
	bool smtputf8;
	bool dsn;		/* RFC 3461 */
	/* RCPTMAX of the LIMITS keyword (RFC 9422): recipients the server
	 * takes per transaction; 0 when it names none. */
	unsigned rcpt_max;
};

/* Reads the keywords of a complete EHLO reply (the lines after the
 * first), ignoring case and unknown ones. */
void smtp_ehlo_parse(const struct smtp_reply *reply, struct smtp_ehlo *out);

/*
 * Writes text as an RFC 3461 xtext (for ORCPT= and ENVID=): printable
 * ASCII other than '+' and '=' as it is, every other byte as "+XX" in
 * upper-case hex. out has room for size bytes; returns the length the
 * whole encoding needs, so a result >= size means it did not fit (out
 * is then terminated but incomplete).
 */
size_t smtp_xtext_encode(const char *text, char *out, size_t size);

/* True when text is a valid xtext: printable ASCII other than '=', and
 * '+' only before two upper-case hex digits. The empty string is not. */
bool smtp_xtext_valid(const char *text);

/*
 * Converter of message bytes to their DATA form, block by block. LF and
 * CRLF become CRLF, and a CR not followed by LF stays as it is. A dot at
 * the start of a line is doubled, and so is a dot right after such a
 * bare CR, so that a receiver that takes a bare CR as a line end never
 * sees a lone dot there.
 */
struct smtp_dot_encoder {
	bool line_start;
	bool after_bare_cr;
	bool cr_pending;	/* the last byte seen was a CR */
};

/* Output bytes a block of len input bytes may need, at most. */
#define SMTP_DOT_ENCODE_MAX(len)	(2 * (len) + 1)
/* Output bytes smtp_dot_encoder_finish() may need, at most. */
#define SMTP_DOT_FINISH_MAX		6

void smtp_dot_encoder_init(struct smtp_dot_encoder *encoder);
/* Writes the DATA form of in[0..len) to out, which has room for at
 * least SMTP_DOT_ENCODE_MAX(len) bytes. Returns the bytes written. */
size_t smtp_dot_encode(struct smtp_dot_encoder *encoder, const char *in,
    size_t len, char *out);
/* Ends the last line when needed (a pending CR is content) and returns
 * its bytes in out; with terminate, ".\r\n" follows. */
size_t smtp_dot_encoder_finish(struct smtp_dot_encoder *encoder,
    bool terminate, char *out);

#endif
