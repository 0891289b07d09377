/*
 * tls_server.c - the SMTP server's OpenSSL context and sessions (see
 * tls_server.h).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "smtp_tls.h"
#include "tls_server.h"
#include "util.h"

/* Pairs of certificate and key accepted in the lists: one RSA and one
 * ECDSA pair is the use they are for. */
#define TLS_SERVER_PAIRS_MAX	4
/* Maximum length of a path in tls_certificate and tls_privatekey. */
#define TLS_SERVER_PATH_MAX	4096

/* The context in use, or NULL when TLS is not offered. */
static SSL_CTX *server_ctx;

/* Reads the pairs of the two lists into ctx. */
static int
tls_server_load_pairs(SSL_CTX *ctx, const struct config *config,
    char **error)
{
	struct config_list_iter certs, keys;
	char cert[TLS_SERVER_PATH_MAX], key[TLS_SERVER_PATH_MAX];
	char reason[256];
	const char *cert_item, *key_item;
	int pairs = 0;

	config_list_init(&certs, config->tls_certificate);
	config_list_init(&keys, config->tls_privatekey != NULL &&
	    config->tls_privatekey[0] != '\0' ? config->tls_privatekey :
	    config->tls_certificate);
	for (;;) {
		cert_item = config_list_next(&certs, cert, sizeof(cert));
		key_item = config_list_next(&keys, key, sizeof(key));
		if (certs.error || keys.error) {
			*error = xasprintf("tls_certificate or tls_privatekey: a "
			    "path is longer than %d bytes", TLS_SERVER_PATH_MAX - 1);
			return -1;
		}
		if (cert_item == NULL && key_item == NULL)
			break;
		if (cert_item == NULL || key_item == NULL) {
			*error = xstrdup("tls_certificate and tls_privatekey "
			    "must name the same number of files");
			return -1;
		}
		if (++pairs > TLS_SERVER_PAIRS_MAX) {
			*error = xasprintf("tls_certificate: more than %d "
			    "certificates", TLS_SERVER_PAIRS_MAX);
			return -1;
		}
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
			*error = xasprintf("tls_certificate: cannot use \"%s\": %s",
			    cert, smtp_tls_error(reason, sizeof(reason),
			    "unknown error"));
			return -1;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			*error = xasprintf("tls_privatekey: cannot use \"%s\" with "
			    "\"%s\": %s", key, cert, smtp_tls_error(reason,
			    sizeof(reason), "unknown error"));
			return -1;
		}
	}
	return 0;
}

int
tls_server_load(const struct config *config, char **error)
{
	char reason[256];
	SSL_CTX *ctx;

	if (config->tls_certificate == NULL ||
	    config->tls_certificate[0] == '\0') {
		tls_server_unload();
		return 0;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		*error = xasprintf("cannot create the TLS server context: %s",
		    smtp_tls_error(reason, sizeof(reason), "unknown error"));
		return -1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* TLS compression (CRIME) and renegotiation are never needed by
	 * SMTP clients. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	if (config->tls_require_ciphers != NULL &&
	    config->tls_require_ciphers[0] != '\0' &&
	    SSL_CTX_set_cipher_list(ctx, config->tls_require_ciphers) != 1) {
		*error = xasprintf("tls_require_ciphers: OpenSSL refuses \"%s\": "
		    "%s", config->tls_require_ciphers, smtp_tls_error(reason,
		    sizeof(reason), "unknown error"));
		goto fail;
	}
	if (tls_server_load_pairs(ctx, config, error) < 0)
		goto fail;

	tls_server_unload();
	server_ctx = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return -1;
}

bool
tls_server_available(void)
{
	return server_ctx != NULL;
}

void
tls_server_unload(void)
{
	/* Each SSL holds its own reference to the context. */
	SSL_CTX_free(server_ctx);
	server_ctx = NULL;
}

SSL *
tls_server_session_new(char **error)
{
	char reason[256];
	SSL *ssl;

	if (server_ctx == NULL) {
		*error = xstrdup("TLS is not set up (tls_certificate is empty)");
		return NULL;
	}
	if ((ssl = SSL_new(server_ctx)) == NULL) {
		*error = xasprintf("cannot create a TLS session: %s",
		    smtp_tls_error(reason, sizeof(reason), "unknown error"));
		return NULL;
	}
	return ssl;
}

void
tls_server_describe(SSL *ssl, char *cipher, char *version, char *standard)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	const char *name;
	char *p;

	/* smtp_tls_describe() formats X= for the client side too. The
	 * certificate status it also reports is unused here. */
	enum smtp_cert_status unused;

	smtp_tls_describe(ssl, cipher, TLS_SERVER_CIPHER_SIZE, &unused);
	strlcpy_s(version, cipher, TLS_SERVER_CIPHER_SIZE);
	if ((p = strchr(version, ':')) != NULL)
		*p = '\0';
	name = c != NULL ? SSL_CIPHER_standard_name(c) : NULL;
	strlcpy_s(standard, name != NULL ? name : "unknown",
	    TLS_SERVER_CIPHER_SIZE);
}

bool
tls_server_on_connect_port(const struct config *config, int port)
{
	struct config_list_iter iter;
	char item[64];
	unsigned long long number;
	struct servent *se;

	config_list_init(&iter, config->tls_on_connect_ports);
	while (config_list_next(&iter, item, sizeof(item)) != NULL) {
		if (parse_uint(item, 65535, &number) == 0) {
			if ((int)number == port)
				return true;
		} else if ((se = getservbyname(item, "tcp")) != NULL &&
		    ntohs((uint16_t)se->s_port) == port) {
			return true;
		}
	}
	return false;
}
