/*
 * smtp_reader.h - framing of SMTP input: command lines, and the message
 * content after DATA.
 *
 * Every framing decision of the SMTP server is made here, on plain
 * memory, so the rules can be tested without a socket:
 *
 *  - A command line ends with CRLF and nothing else. A bare LF ends the
 *    bad line (so the session can reply to it and go on), and a bare CR
 *    or a NUL inside a line makes the line an error too.
 *  - A command line longer than the caller's maximum is skipped up to
 *    its CRLF and reported once, however long it is. No more than the
 *    maximum is ever examined at a time.
 *  - Message content ends only at CRLF "." CRLF. A line that starts
 *    with "." loses that dot (RFC 5321 4.5.2). A bare LF is content. A
 *    line of one dot with a bare LF or bare CR on either side ("\n.\n",
 *    "\r.\r", "\n.\r\n", "\r\n.\n" and the like) is how SMTP smuggling
 *    hides a second message from a server that ends DATA there: the
 *    reader latches an error, keeps reading to the real end and the
 *    whole message is rejected.
 *  - Content is passed on with LF line endings, the form of Exim's -D
 *    file: the header section is kept in memory (bounded), the body is
 *    handed to a write function as it arrives, so a message of any size
 *    needs bounded memory.
 *  - The message size (content with LF line endings, as Exim counts it
 *    against message_size_limit) is checked while reading; once it is
 *    over the limit nothing more is written.
 */
#ifndef SLUICE_SMTP_READER_H
#define SLUICE_SMTP_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its
 * CRLF. Extensions may add to that; SMTP_LINE_HARD_MAX is the ceiling
 * whatever is advertised. */
#define SMTP_LINE_MAX		512
#define SMTP_LINE_HARD_MAX	2048

/* Default bounds on the header section kept in memory, which
 * smtp_data_init() sets and the caller may change: Exim's header_maxsize
 * and received_headers_max defaults, and the -H file's limits on one
 * field and on the number of fields. */
#define SMTP_HEADER_BYTES_MAX	(1024 * 1024)
#define SMTP_HEADER_FIELD_MAX	65536
#define SMTP_HEADER_FIELDS_MAX	10000
#define SMTP_RECEIVED_MAX	30

enum smtp_line_status {
	SMTP_LINE_NONE,		/* no complete line yet: read more */
	SMTP_LINE_OK,		/* a command line */
	SMTP_LINE_TOO_LONG,	/* over the maximum; skipped through its end */
	SMTP_LINE_BARE_LF,	/* ended by LF without CR */
	SMTP_LINE_BARE_CR,	/* holds a CR that is not part of its CRLF */
	SMTP_LINE_NUL,		/* holds a NUL byte */
};

struct smtp_line_reader {
	bool skipping;		/* inside a line that was too long */
};

/*
 * Examines buf[0..len), the start of the unread input, and returns the
 * status. In every case *consumed is the number of bytes the caller
 * drops from its input. For SMTP_LINE_NONE that is 0, unless an overlong
 * line is being skipped. For SMTP_LINE_OK the line is buf[0..*line_len),
 * without its CRLF.
 *
 * max is the maximum line length, CRLF included, and is capped at
 * SMTP_LINE_HARD_MAX. The caller need pass no more than max bytes. When
 * len >= max, at least one byte is always consumed, so the caller's
 * input buffer stays bounded.
 */
enum smtp_line_status smtp_line_next(struct smtp_line_reader *reader,
    const char *buf, size_t len, size_t max, size_t *line_len,
    size_t *consumed);

/* Reasons to reject a message's content; the first one found is kept. */
enum smtp_data_error {
	SMTP_DATA_OK,
	SMTP_DATA_SMUGGLING,		/* bare LF or CR next to a dot line */
	SMTP_DATA_TOO_BIG,		/* over the size limit */
	SMTP_DATA_HEADER_TOO_BIG,	/* header section over header_max
					 * bytes or header_fields_max fields */
	SMTP_DATA_HEADER_LINE_TOO_LONG,	/* a field over header_line_max */
	SMTP_DATA_LOOP,			/* too many Received: fields */
	SMTP_DATA_WRITE_FAILED,		/* the write function failed */
};

/* Writes body bytes; returns 0, or -1 to stop writing (the reader then
 * latches SMTP_DATA_WRITE_FAILED). */
typedef int (*smtp_body_write_fn)(void *arg, const char *buf, size_t len);

/* Size of the staging buffer for body bytes, so the write function is
 * called with runs rather than single bytes. */
#define SMTP_DATA_STAGE_SIZE	4096

struct smtp_data_reader {
	/* Set by the caller. */
	uint64_t size_limit;		/* bytes; 0 = no limit */
	smtp_body_write_fn write;
	void *write_arg;
	/* Bounds, preset by smtp_data_init(); none may be 0. */
	size_t header_max;		/* bytes of the header section */
	size_t header_line_max;		/* bytes of one field, with its
					 * continuation lines */
	unsigned header_fields_max;
	unsigned received_max;		/* Received: fields; more is a loop */

	/* Results. */
	bool done;			/* the final CRLF.CRLF was read */
	enum smtp_data_error error;
	uint64_t size;			/* content bytes, LF line endings */
	char *headers;			/* header section, LF endings; owned */
	size_t headers_len;
	uint64_t body_size;
	uint64_t body_lines;		/* newlines in the body */
	uint64_t body_zeros;		/* NUL bytes in the body */
	size_t max_line_len;		/* longest line, without its newline */
	unsigned received_count;	/* Received: fields in the header */

	/* Private state. */
	int state;
	bool in_body;
	int line_kind;			/* what the current header line is */
	size_t line_len;
	size_t line_start;		/* offset of the current line in headers */
	size_t name_len;		/* field name bytes seen on this line */
	bool name_done;			/* white space after the name seen */
	size_t field_len;		/* bytes of the current field */
	unsigned header_fields;
	size_t headers_alloc;
	char stage[SMTP_DATA_STAGE_SIZE];
	size_t stage_len;
	bool chunk_cr;			/* a BDAT chunk ended in CR */
};

/* Prepares reader for one message with the default bounds; the caller
 * then sets size_limit, write and write_arg, and may change the bounds. */
void smtp_data_init(struct smtp_data_reader *reader);

/*
 * Reads content from buf[0..len). Returns the bytes consumed: all of
 * them, or fewer when the end of the content was reached (done is then
 * set, and what follows is the next command). Body bytes are flushed to
 * the write function before it returns.
 */
size_t smtp_data_feed(struct smtp_data_reader *reader, const char *buf,
    size_t len);

/*
 * Reads BDAT chunk bytes (RFC 3030) from buf[0..len): no dot-stuffing
 * and no end marker, CRLF becoming LF as in DATA, a CRLF split across
 * two chunks included. Consumes all of buf.
 */
void smtp_data_feed_chunk(struct smtp_data_reader *reader, const char *buf,
    size_t len);

/* Ends chunked content after the LAST chunk and sets done. */
void smtp_data_finish_chunks(struct smtp_data_reader *reader);

/* Frees what the reader holds; it may be initialised again. */
void smtp_data_free(struct smtp_data_reader *reader);

#endif
