/*
 * tls_server.h - TLS for the SMTP server: the OpenSSL server context
 * built from tls_certificate, tls_privatekey and tls_require_ciphers,
 * and the session of one incoming connection (STARTTLS or
 * tls_on_connect_ports).
 *
 * tls_certificate and tls_privatekey are lists of the same length, so
 * that an RSA and an ECDSA pair can be offered together; OpenSSL picks
 * the one the client supports. tls_sni_certificates lists certificates
 * chosen by the name the client requests (SNI, RFC 6066 section 3). Each
 * item is "name certificate [key]", with name a host name or "*.domain".
 * The first item that covers the name wins, and other names get
 * tls_certificate. TLS 1.2 is the lowest version accepted.
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

/* Whether a session requests the client's certificate (RFC 5246
 * section 7.4.4), as Exim's tls_verify_hosts and tls_try_verify_hosts
 * set it. */
enum tls_server_verify {
	TLS_SERVER_VERIFY_NONE,		/* not requested */
	TLS_SERVER_VERIFY_TRY,		/* requested; the result is recorded */
	TLS_SERVER_VERIFY_REQUIRE,	/* the handshake fails without one
					 * that verifies */
};

/* Sets whether ssl, a new session, requests the client's certificate.
 * The certificates to verify against come from tls_verify_certificates. */
void tls_server_session_verify(SSL *ssl, enum tls_server_verify mode);

/* Copies the host name the client asked for with SNI into name (size
 * bytes, cut to fit), or "" when it sent none. */
void tls_server_sni_name(SSL *ssl, char *name, size_t size);

/* Room for the certificate's subject as DN= shows it. */
#define TLS_SERVER_DN_SIZE	512

/*
 * Reads the client certificate of an established session: its subject
 * in OpenSSL's one-line form ("/O=Example/CN=client.example"), cut to
 * size bytes, and whether it verified. Returns false, with dn empty and
 * *verified false, when the client sent none.
 */
bool tls_server_peer(SSL *ssl, char *dn, size_t size, bool *verified);

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
