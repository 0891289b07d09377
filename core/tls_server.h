/*
 * tls_server.h - TLS for the SMTP server: the OpenSSL server context
 * built from tls_certificate, tls_privatekey and tls_require_ciphers,
 * and the session of one incoming connection (STARTTLS or
 * tls_on_connect_ports).
 *
 * tls_certificate and tls_privatekey are lists of the same length, so
 * that an RSA and an ECDSA pair can be offered together; OpenSSL picks
 * the one the client supports. TLS 1.2 is the lowest version accepted.
 * The files are read when the daemon starts and again on reload, after
 * privileges are dropped, so they must be readable by exim_user.
 *
 * Thread use: loop thread only.
 * Fatal: out of memory only.
 */
#ifndef SLUICE_TLS_SERVER_H
#define SLUICE_TLS_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "config.h"

/* Room for what X= shows, "TLS1.3:TLS_AES_256_GCM_SHA384:256". */
#define TLS_SERVER_CIPHER_SIZE	128

/*
 * Builds the server context from config's tls_* options, replacing the
 * one in use. With tls_certificate empty there is no context and TLS is
 * not offered. Returns 0, or -1 with *error set (caller frees) when a
 * file cannot be read or OpenSSL refuses a setting; the context in use,
 * if any, is then kept.
 */
int tls_server_load(const struct config *config, char **error);

/* True if a context is loaded, so STARTTLS can be offered. */
bool tls_server_available(void);

/* Frees the context; sessions that use it keep it until they end. */
void tls_server_unload(void);

/*
 * Creates the session of one accepted connection. The caller owns the
 * result (a bufferevent that takes it over frees it). Returns NULL with
 * *error set when no context is loaded or OpenSSL cannot create it.
 */
SSL *tls_server_session_new(char **error);

/*
 * Describes an established session for the <= line and the Received:
 * field: cipher as X= shows it ("TLS1.3:TLS_AES_256_GCM_SHA384:256"),
 * version as "TLS1.3" and the cipher's standard (RFC) name, each written
 * into a buffer of TLS_SERVER_CIPHER_SIZE bytes.
 */
void tls_server_describe(SSL *ssl, char *cipher, char *version,
    char *standard);

/*
 * True if port is in tls_on_connect_ports (numbers or service names).
 * Items that are neither are skipped; the option is checked when the
 * configuration is read.
 */
bool tls_server_on_connect_port(const struct config *config, int port);

#endif
