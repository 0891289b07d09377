/*
 * smtp_tls.c - the SMTP client's OpenSSL context and sessions (see
 * smtp_tls.h).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "smtp_tls.h"
#include "util.h"

struct smtp_tls_context {
	SSL_CTX *ctx;
};

const char *
smtp_tls_error(char *buf, size_t size, const char *fallback)
{
	unsigned long code = ERR_get_error();

	if (code == 0)
		strlcpy_s(buf, fallback, size);
	else
		ERR_error_string_n(code, buf, size);
	ERR_clear_error();
	return buf;
}

struct smtp_tls_context *
smtp_tls_context_new(const char *verify_certificates, char **error)
{
	struct smtp_tls_context *context;
	char reason[256];
	struct stat st;
	SSL_CTX *ctx;
	int ok;

	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		*error = xasprintf("cannot create the TLS client context: %s",
		    smtp_tls_error(reason, sizeof(reason), "unknown error"));
		return NULL;
	}
	/* Verification is recorded, never enforced: see the header. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

	if (verify_certificates == NULL || *verify_certificates == '\0' ||
	    strcmp(verify_certificates, "system") == 0)
		ok = SSL_CTX_set_default_verify_paths(ctx);
	else if (stat(verify_certificates, &st) == 0 && S_ISDIR(st.st_mode))
		ok = SSL_CTX_load_verify_locations(ctx, NULL,
		    verify_certificates);
	else
		ok = SSL_CTX_load_verify_locations(ctx, verify_certificates,
		    NULL);
	if (ok != 1) {
		*error = xasprintf("tls_verify_certificates: cannot load "
		    "\"%s\": %s", verify_certificates,
		    smtp_tls_error(reason, sizeof(reason), "unknown error"));
		SSL_CTX_free(ctx);
		return NULL;
	}

	context = xcalloc(1, sizeof(*context));
	context->ctx = ctx;
	return context;
}

void
smtp_tls_context_free(struct smtp_tls_context *context)
{
	if (context == NULL)
		return;
	SSL_CTX_free(context->ctx);
	free(context);
}

static bool
smtp_tls_is_ip(const char *text)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, text, buf) == 1 ||
	    inet_pton(AF_INET6, text, buf) == 1;
}

SSL *
smtp_tls_session_new(const struct smtp_tls_context *context,
    const char *host_name, char **error)
{
	char reason[256];
	SSL *ssl = SSL_new(context->ctx);

	if (ssl == NULL) {
		*error = xasprintf("cannot create a TLS session: %s",
		    smtp_tls_error(reason, sizeof(reason), "unknown error"));
		return NULL;
	}
	/* RFC 6066 section 3: SNI carries a host name, never an address. */
	if (host_name != NULL && *host_name != '\0' &&
	    !smtp_tls_is_ip(host_name)) {
		if (SSL_set_tlsext_host_name(ssl, host_name) != 1 ||
		    SSL_set1_host(ssl, host_name) != 1) {
			*error = xasprintf("cannot set the TLS server name "
			    "\"%s\": %s", host_name, smtp_tls_error(reason,
			    sizeof(reason), "unknown error"));
			SSL_free(ssl);
			return NULL;
		}
	}
	return ssl;
}

void
smtp_tls_describe(SSL *ssl, char *cipher, size_t size,
    enum smtp_cert_status *cert)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	const char *version = SSL_get_version(ssl);
	X509 *peer = SSL_get0_peer_certificate(ssl);
	char protocol[16];
	size_t n = 0;

	/* Exim writes OpenSSL's "TLSv1.3" as "TLS1.3". */
	for (const char *p = version; *p != '\0' && n + 1 < sizeof(protocol);
	    p++)
		if (*p != 'v')
			protocol[n++] = *p;
	protocol[n] = '\0';
	snprintf(cipher, size, "%s:%s:%d", protocol,
	    c != NULL ? SSL_CIPHER_get_name(c) : "unknown",
	    c != NULL ? SSL_CIPHER_get_bits(c, NULL) : 0);

	if (peer == NULL)
		*cert = SMTP_CERT_NONE;
	else if (SSL_get_verify_result(ssl) == X509_V_OK)
		*cert = SMTP_CERT_VERIFIED;
	else
		*cert = SMTP_CERT_UNVERIFIED;
}
