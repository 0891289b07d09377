/*
 * smtp_server_esc.h - enhanced status codes (RFC 2034, RFC 3463) on the
 * SMTP server's replies, when smtp_enhanced_status_codes is set and the
 * client greeted with EHLO.
 *
 * The code goes after the reply code and before the unchanged text, on
 * every line of a multi-line reply: "250 OK" becomes "250 2.1.0 OK"
 * after MAIL. 3xx replies (354, 334 challenges) and lines that already
 * carry a code are left alone. The caller leaves out the greeting and
 * the replies to HELO and EHLO, as RFC 2034 section 3 says.
 */
#ifndef SLUICE_SMTP_SERVER_ESC_H
#define SLUICE_SMTP_SERVER_ESC_H

/* Room for the longest enhanced code, "5.999.999", and its NUL. */
#define SMTP_ESC_SIZE	10

/*
 * Returns the enhanced code for the reply text ("NNN text", only the
 * first line is read) to the command verb ("MAIL", "RCPT", ...; NULL
 * when unknown), or NULL when the reply gets none. Static string.
 */
const char *smtp_esc_code(const char *text, const char *verb);

/*
 * Returns text with code inserted on each line (caller frees), or NULL
 * when text should be sent unchanged. Lines are separated by CRLF and
 * text has none at its end.
 */
char *smtp_esc_apply(const char *text, const char *verb);

#endif
