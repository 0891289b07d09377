/*
 * spool_header.h - a spooled message's envelope and headers in memory,
 * and Exim's -H file format, as pure functions (no file I/O).
 *
 * The -H file, line by line:
 *   <id>-H
 *   <login> <uid> <gid>              of the process that submitted it
 *   <<sender>>                       "<>" for a bounce
 *   <received_time> <warning_count>
 *   -option lines                    "--name" marks tainted data
 *   non-recipients tree              "XX", or "<L><R> <address>" lines
 *   <recipient count>
 *   recipient lines                  plain, or the "#1"/"#3" extended forms
 *   <empty line>
 *   header fields                    "NNNF text": NNN = byte length of
 *                                    text, F = flag (enum spool_field_flag)
 * spool_header_format() writes the options sluice models in the order
 * Exim's spool_write_header() uses, so a message holding only those comes
 * out byte for byte as Exim writes it. Option lines sluice does not model
 * are kept in unknown_options and written back verbatim, after
 * -tls_cipher. Older forms that Exim still reads ("-acl <n>",
 * "-host_address ip.port", early recipient lines) are read and written
 * back in the current form.
 *
 * sluice's own per-message state rides in ACL variables, which Exim's
 * tools carry along and otherwise ignore (SPOOL_ACL_CLASS and friends).
 *
 * Ownership: a struct spool_header owns every string and array it points
 * to; spool_header_free() releases them. The parse and format results
 * and every *error string belong to the caller.
 *
 * Limits: every length and count in a file is checked against the bounds
 * below, and a file that breaks one is rejected with an error naming the
 * line. Fatal: running out of memory, and (a bug) a NULL string inside
 * one of the arrays of a struct given to the formatter.
 */
#ifndef SLUICE_SPOOL_HEADER_H
#define SLUICE_SPOOL_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msgid.h"

/* Bytes in one line of the envelope part, without its newline. */
#define SPOOL_HEADER_LINE_MAX		16384
/* Bytes in an address: sender, recipient, ORCPT, errors_to and the keys
 * of delivered addresses ("address" or "address/transport"). */
#define SPOOL_HEADER_ADDRESS_MAX	4096
/* NOTE: Exim's own reader (src/src/spool_in.c in the 4.9x sources)
 * rejects a file with more than 16,384 recipients, so a message above
 * that cannot be handed back to Exim. */
#define SPOOL_HEADER_RECIPIENTS_MAX	100000
/* Delivered addresses: each recipient, plus addresses that routing
 * generated from them (aliases, pipes), so twice the recipients. */
#define SPOOL_HEADER_NONRECIPIENTS_MAX	200000
/* ACL variables and unknown option lines together. */
#define SPOOL_HEADER_OPTIONS_MAX	1000
/* Bytes of an ACL variable's name after "acl_c" or "acl_m". */
#define SPOOL_HEADER_ACL_NAME_MAX	255
#define SPOOL_HEADER_ACL_VALUE_MAX	65536
/* Header fields: bytes in one field including its newlines, number of
 * fields, and bytes of all fields together. Exim's header_maxsize, the
 * limit on a received message's header, defaults to 1 MiB; the spool
 * also keeps deleted and added fields, so the total allowed is larger. */
#define SPOOL_HEADER_FIELD_MAX		65536
#define SPOOL_HEADER_FIELDS_MAX		10000
#define SPOOL_HEADER_FIELDS_BYTES_MAX	(8 * 1024 * 1024)

/* ACL variables that carry sluice's queue class, tenant and campaign. */
#define SPOOL_ACL_CLASS		"acl_m_sluice_class"
#define SPOOL_ACL_TENANT	"acl_m_sluice_tenant"
#define SPOOL_ACL_CAMPAIGN	"acl_m_sluice_campaign"

/* Flag letter after the length of a header field (Exim's htype_*). */
enum spool_field_flag {
	SPOOL_FIELD_OTHER	= ' ',
	SPOOL_FIELD_BCC		= 'B',
	SPOOL_FIELD_CC		= 'C',
	SPOOL_FIELD_FROM	= 'F',
	SPOOL_FIELD_MESSAGE_ID	= 'I',
	SPOOL_FIELD_RECEIVED	= 'P',	/* "postmark" */
	SPOOL_FIELD_REPLY_TO	= 'R',
	SPOOL_FIELD_SENDER	= 'S',
	SPOOL_FIELD_TO		= 'T',
	/* Deleted or replaced: kept in the file, never transmitted and not
	 * counted in the message size. */
	SPOOL_FIELD_DELETED	= '*',
};

/* Bits of spool_header.tainted: string options written as "--name". */
enum spool_taint {
	SPOOL_TAINT_HELO_NAME		= 1u << 0,
	SPOOL_TAINT_HOST_ADDRESS	= 1u << 1,
	SPOOL_TAINT_HOST_NAME		= 1u << 2,
	SPOOL_TAINT_HOST_AUTH		= 1u << 3,
	SPOOL_TAINT_INTERFACE_ADDRESS	= 1u << 4,
	SPOOL_TAINT_RECEIVED_PROTOCOL	= 1u << 5,
	SPOOL_TAINT_AUTH_ID		= 1u << 6,
	SPOOL_TAINT_AUTH_SENDER		= 1u << 7,
	SPOOL_TAINT_TLS_CIPHER		= 1u << 8,
	SPOOL_TAINT_DSN_ENVID		= 1u << 9,
};

struct spool_recipient {
	char *address;
	char *orcpt;		/* DSN original recipient (RFC 3461), or NULL */
	char *errors_to;	/* where bounces for it go, or NULL */
	int dsn_flags;		/* Exim's rf_notify_* bits, 0 if none */
	int pno;		/* parent number of a one_time alias, or -1 */
};

/* An ACL variable: "acl_c<rest>" lives for the connection, "acl_m<rest>"
 * for the message. */
struct spool_acl_var {
	char *name;		/* whole name, e.g. "acl_m_sluice_class" */
	char *value;		/* may contain newlines, never a NUL */
	bool tainted;
};

/* A header field: len bytes of text, ending with a newline and followed
 * by an extra NUL. */
struct spool_header_field {
	char flag;		/* enum spool_field_flag */
	size_t len;
	char *text;
};

/*
 * The contents of a -H file. A zeroed struct is empty and valid to free.
 * Strings set to NULL and numbers set to 0 are not written, except the
 * options Exim always writes (received_time_usec, body_linecount,
 * max_received_linelength).
 */
struct spool_header {
	char id[MSGID_SIZE];

	char *login;		/* NULL is written as "" */
	int64_t uid;
	int64_t gid;
	char *sender;		/* without angle brackets; "" or NULL for <> */
	int64_t received_time;	/* seconds since the epoch */
	int warning_count;	/* delay warnings already sent */

	/* Option lines. */
	int received_time_usec;
	int64_t received_time_complete;		/* seconds; with the next, */
	int received_time_complete_usec;	/* written unless both 0 */
	char *helo_name;
	char *host_address;	/* sending host's IP address, no brackets */
	int host_port;
	char *host_name;
	char *host_auth;	/* authenticator's driver name */
	char *interface_address;
	int interface_port;
	char *received_protocol;
	int body_linecount;	/* not written with spool_file_wireformat */
	int max_received_linelength;
	int body_zerocount;
	char *auth_id;
	char *auth_sender;
	bool deliver_firsttime;
	bool frozen;
	int64_t frozen_at;	/* seconds since the epoch, when frozen */
	bool manual_thaw;
	bool dont_deliver;	/* -N */
	bool local;		/* submitted by a process on this host */
	bool local_error;	/* -localerror: a locally generated bounce */
	bool sender_set_untrusted;
	bool tls_certificate_verified;
	char *tls_cipher;
	bool spool_file_wireformat;	/* -D body lines end in CRLF */
	bool smtputf8;
	char *dsn_envid;
	int dsn_ret;		/* RET=: 1 FULL, 2 HDRS, 0 none */
	unsigned tainted;	/* enum spool_taint bits */

	struct spool_acl_var *acl_vars;
	size_t acl_vars_count;
	/* Option lines sluice does not model, without their newline. */
	char **unknown_options;
	size_t unknown_options_count;

	/* Keys of delivered addresses (the non-recipients tree), in no
	 * particular order. Change them through the functions below, which
	 * keep nonrecipients_sorted up to date: the length of the prefix
	 * that is sorted by strcmp(). */
	char **nonrecipients;
	size_t nonrecipients_count;
	size_t nonrecipients_sorted;

	/* Every recipient of the message, delivered or not. A delivered
	 * one also has its key in nonrecipients. */
	struct spool_recipient *recipients;
	size_t recipients_count;

	struct spool_header_field *fields;
	size_t fields_count;

	/* Allocated slots of the arrays above, kept by the functions below. */
	size_t acl_vars_alloc;
	size_t unknown_options_alloc;
	size_t nonrecipients_alloc;
	size_t recipients_alloc;
	size_t fields_alloc;
};

/*
 * Parses the -H file in data[0..len); data need not end with a NUL.
 * filename is used in error messages, and when its last component is
 * "<id>-H" for a valid id, line 1 must name the same id. Returns 0 with
 * *out filled (free it with spool_header_free()), or -1 with *out zeroed
 * and *error = "FILENAME:LINE: what is wrong" (caller frees).
 */
int spool_header_parse(const char *data, size_t len, const char *filename,
    struct spool_header *out, char **error);

/*
 * Formats h as a -H file. Returns the bytes (caller frees; a NUL follows
 * them) with their number in *len, or NULL when h contains a value the
 * format cannot carry. spool_header_check() names that value.
 */
char *spool_header_format(const struct spool_header *h, size_t *len);

/* Returns 0 if spool_header_format() accepts h, or -1 with *error set
 * (caller frees) naming the first value it rejects. */
int spool_header_check(const struct spool_header *h, char **error);

/* Frees everything h owns and zeroes it. Accepts a zeroed struct. */
void spool_header_free(struct spool_header *h);

/* True if a and b contain the same data, which means they format to the
 * same bytes. The order of nonrecipients does not matter. */
bool spool_header_equal(const struct spool_header *a,
    const struct spool_header *b);

/*
 * Applies the -J journal in data[0..len): each line is the key of an
 * address delivered since the -H file was written, and is marked
 * delivered. Empty lines are skipped. A last line without its newline is
 * an append cut short by a crash and is ignored, so the address is tried
 * again rather than a wrong key being recorded. Returns 0, or -1 with
 * *error = "journal line N: what is wrong" (caller frees) and h unchanged.
 */
int spool_journal_apply(struct spool_header *h, const char *data, size_t len,
    char **error);

/* True if the key address is among the delivered addresses. */
bool spool_header_is_delivered(const struct spool_header *h,
    const char *address);

/* Adds the key address (copied) to the delivered addresses, if absent.
 * The recipient list is unchanged, as in Exim. */
void spool_header_mark_delivered(struct spool_header *h, const char *address);

/* Removes the key address from the delivered addresses, if present, so
 * the recipient is tried again (a failed bounce that is frozen). */
void spool_header_unmark_delivered(struct spool_header *h,
    const char *address);

/* Bytes of the live header fields (flag not '*'), as Exim counts them in
 * the message size. */
size_t spool_header_size(const struct spool_header *h);

/*
 * Appends a recipient with the address copied, no DSN data and pno -1.
 * Returns it, borrowed until the next change to the recipient list, so
 * the caller can set orcpt and the other members (strings it sets there
 * become owned by h).
 */
struct spool_recipient *spool_header_add_recipient(struct spool_header *h,
    const char *address);

/* Appends a header field: text[0..len) is copied and must end with a
 * newline. */
void spool_header_add_field(struct spool_header *h, char flag,
    const char *text, size_t len);

/* Appends an option line to keep verbatim (copied, without newline). */
void spool_header_add_unknown_option(struct spool_header *h,
    const char *line);

/* Sorts the delivered keys and drops duplicates. Callers that fill the
 * nonrecipients array directly call it afterwards. */
void spool_header_sort_delivered(struct spool_header *h);

/* True if flag is one of enum spool_field_flag. */
bool spool_field_flag_valid(char flag);

/* Returns the flag Exim gives a header field named name[0..len) (no
 * colon), compared without case: Received P, Reply-To R, From F, To T,
 * Cc C, Bcc B, Message-ID I, Sender S, anything else ' '. */
char spool_field_flag_for_name(const char *name, size_t len);

/*
 * Sets the ACL variable name (e.g. SPOOL_ACL_CLASS) to a copy of value,
 * replacing an earlier value, or adding it after the others. Returns the
 * variable (borrowed until the next change to h), or NULL if
 * spool_acl_name_valid() rejects name.
 */
struct spool_acl_var *spool_header_set_acl(struct spool_header *h,
    const char *name, const char *value);

/* True if name is "acl_c" or "acl_m" followed by 1 to
 * SPOOL_HEADER_ACL_NAME_MAX letters, digits or '_'. */
bool spool_acl_name_valid(const char *name);

/* Returns the value of the ACL variable name (borrowed from h), or NULL. */
const char *spool_header_get_acl(const struct spool_header *h,
    const char *name);

#endif
