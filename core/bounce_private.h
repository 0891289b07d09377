/*
 * bounce_private.h - the text helpers that bounce.c and bounce_notice.c
 * share to build reports. Only core/bounce*.c include this header.
 */
#ifndef SLUICE_BOUNCE_PRIVATE_H
#define SLUICE_BOUNCE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "util.h"

struct spool_header;

/* A growing string; every call keeps it NUL-terminated. A zeroed struct
 * is empty, and the caller frees data. */
struct bounce_text {
	char *data;
	size_t len;
	size_t alloc;
};

void bounce_text_add(struct bounce_text *t, const char *s, size_t n);
void bounce_text_puts(struct bounce_text *t, const char *s);
void bounce_text_addf(struct bounce_text *t, const char *fmt, ...)
    SLUICE_PRINTF(2, 3);
/* Appends text with every line indented by indent spaces. */
void bounce_text_indented(struct bounce_text *t, const char *text,
    int indent);

/* Returns the unfolded value of the first live field called name, or
 * NULL (caller frees). */
char *bounce_field_value(const struct spool_header *h, const char *name);

/* Writes the header fields every report shares, from Auto-Submitted:
 * to MIME-Version:, for a multipart/report with boundary. */
void bounce_report_headers(struct bounce_text *t, const struct config *config,
    const struct spool_header *original, const char *boundary);

/* Writes the returned message: Return-path:, the live header fields and,
 * unless headers_only, the body (body_len bytes). */
void bounce_returned_part(struct bounce_text *t, const struct spool_header *h,
    const char *body, size_t body_len, bool headers_only);

#endif
