/*
 * smtp_tls.h - TLS for the SMTP client: one OpenSSL client context with
 * the certificates to verify servers against, and the session of one
 * connection (SNI, host name check, what the logs show of it).
 *
 * Verification never stops a handshake: STARTTLS is opportunistic, so a
 * server with a self-signed or expired certificate still gets the mail
 * encrypted. The outcome only decides what CV= shows on mainlog.
 *
 * Thread use: a context may be shared by every connection of the loop
 * thread; a session belongs to one connection.
 * Fatal: out of memory only.
 */
#ifndef SLUICE_SMTP_TLS_H
#define SLUICE_SMTP_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "smtp_client.h"

struct smtp_tls_context;

/*
 * Creates the client context. verify_certificates is Exim's
 * tls_verify_certificates: "system" (or NULL or "") for the system's
 * trust store, else the path of a PEM file or of a directory hashed
 * with "openssl rehash". Returns NULL with *error set (caller frees)
 * when OpenSSL rejects the setting.
 */
struct smtp_tls_context *smtp_tls_context_new(const char *verify_certificates,
    char **error);

/* Accepts NULL. */
void smtp_tls_context_free(struct smtp_tls_context *context);

/*
 * Creates the session of one connection to host_name (borrowed for the
 * call). A host name, not an IP address, is sent as SNI (RFC 6066) and
 * checked against the certificate. The caller owns the result and frees
 * it with SSL_free() (a bufferevent that takes it over frees it).
 * Returns NULL with *error set when OpenSSL cannot create it.
 */
SSL *smtp_tls_session_new(const struct smtp_tls_context *context,
    const char *host_name, char **error);

/*
 * Describes an established session for mainlog: cipher as Exim logs it
 * with OpenSSL ("TLS1.3:TLS_AES_256_GCM_SHA384:256", written into cipher
 * of size bytes) and the result of the certificate check.
 */
void smtp_tls_describe(SSL *ssl, char *cipher, size_t size,
    enum smtp_cert_status *cert);

/* Returns OpenSSL's description of the first error in the thread's
 * queue and empties it, or fallback when the queue is empty. The text
 * is copied into buf of size bytes, which is returned. */
const char *smtp_tls_error(char *buf, size_t size, const char *fallback);

#endif
