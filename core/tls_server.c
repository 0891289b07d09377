/*
 * tls_server.c - the SMTP server's OpenSSL context and sessions (see
 * tls_server.h).
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "smtp_tls.h"
#include "tls_server.h"
#include "util.h"

/* Pairs of certificate and key accepted in the lists: one RSA and one
 * ECDSA pair is the use they are for. */
#define TLS_SERVER_PAIRS_MAX	4
/* Maximum length of a path in tls_certificate and tls_privatekey. */
#define TLS_SERVER_PATH_MAX	4096

/* Entries of tls_sni_certificates. */
#define TLS_SERVER_SNI_MAX	64
/* Maximum length of a host name a client may request (RFC 1035 section
 * 2.3.4). */
#define TLS_SERVER_SNI_NAME_MAX	253

/* A certificate chosen by the name the client asked for (RFC 6066
 * section 3): name is a host name, or "*.domain" for any name one label
 * below domain. */
struct tls_server_sni {
	char name[TLS_SERVER_SNI_NAME_MAX + 1];
	SSL_CTX *ctx;
};

/* The context in use, or NULL when TLS is not offered, and its SNI
 * table; reloading replaces both together. */
static SSL_CTX *server_ctx;
static struct tls_server_sni *server_sni;
static size_t server_sni_count;

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

/* True if the host list option value is set (not empty). */
static bool
tls_server_list_set(const char *list)
{
	return list != NULL && list[0] != '\0';
}

/*
 * Loads tls_verify_certificates into ctx when tls_verify_hosts or
 * tls_try_verify_hosts may ask a client for its certificate. The
 * session id context lets OpenSSL resume sessions that checked a
 * client certificate.
 */
static int
tls_server_load_verify(SSL_CTX *ctx, const struct config *config,
    char **error)
{
	static const unsigned char id_context[] = "sluice";
	const char *where = config->tls_verify_certificates;
	char reason[256];
	struct stat st;
	int ok;

	if (!tls_server_list_set(config->tls_verify_hosts) &&
	    !tls_server_list_set(config->tls_try_verify_hosts))
		return 0;
	SSL_CTX_set_session_id_context(ctx, id_context,
	    sizeof(id_context) - 1);
	if (where == NULL || where[0] == '\0' || strcmp(where, "system") == 0)
		ok = SSL_CTX_set_default_verify_paths(ctx);
	else if (stat(where, &st) == 0 && S_ISDIR(st.st_mode))
		ok = SSL_CTX_load_verify_locations(ctx, NULL, where);
	else
		ok = SSL_CTX_load_verify_locations(ctx, where, NULL);
	if (ok != 1) {
		*error = xasprintf("tls_verify_certificates: cannot load \"%s\": "
		    "%s", where, smtp_tls_error(reason, sizeof(reason),
		    "unknown error"));
		return -1;
	}
	return 0;
}

/*
 * Creates a context with the settings every certificate shares: TLS 1.2
 * or later, tls_require_ciphers, client certificate checks. Returns
 * NULL with *error set.
 */
static SSL_CTX *
tls_server_context_new(const struct config *config, char **error)
{
	char reason[256];
	SSL_CTX *ctx;

	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		*error = xasprintf("cannot create the TLS server context: %s",
		    smtp_tls_error(reason, sizeof(reason), "unknown error"));
		return NULL;
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
	if (tls_server_load_verify(ctx, config, error) < 0)
		goto fail;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static void
tls_server_sni_free(struct tls_server_sni *sni, size_t count)
{
	for (size_t i = 0; i < count; i++)
		SSL_CTX_free(sni[i].ctx);
	free(sni);
}

/* True if the SNI entry pattern covers the host name asked for. */
static bool
tls_server_sni_matches(const char *pattern, const char *name)
{
	const char *dot;

	if (strcasecmp(pattern, name) == 0)
		return true;
	if (strncmp(pattern, "*.", 2) != 0 || (dot = strchr(name, '.')) == NULL)
		return false;
	return dot > name && strcasecmp(pattern + 2, dot + 1) == 0;
}

/*
 * OpenSSL's server name callback: moves the session to the context of
 * the first tls_sni_certificates entry that covers the name the client
 * asked for. Without a match, or without SNI, the session keeps
 * tls_certificate.
 */
static int
tls_server_servername_cb(SSL *ssl, int *alert, void *arg)
{
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	(void)alert;
	(void)arg;
	if (name == NULL || strlen(name) > TLS_SERVER_SNI_NAME_MAX)
		return SSL_TLSEXT_ERR_OK;
	for (size_t i = 0; i < server_sni_count; i++) {
		if (!tls_server_sni_matches(server_sni[i].name, name))
			continue;
		if (SSL_set_SSL_CTX(ssl, server_sni[i].ctx) == NULL)
			return SSL_TLSEXT_ERR_ALERT_FATAL;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_OK;
}

/* Splits one tls_sni_certificates item, "name certificate [key]", into
 * its fields. Returns the number of fields, or -1 when there are more
 * than three or one is too long. */
static int
tls_server_sni_fields(const char *item, char *name, char *cert, char *key)
{
	char *fields[3] = { name, cert, key };
	size_t sizes[3] = { TLS_SERVER_SNI_NAME_MAX + 1, TLS_SERVER_PATH_MAX,
	    TLS_SERVER_PATH_MAX };
	const char *p = item;
	int count = 0;

	for (;;) {
		size_t len;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return count;
		len = strcspn(p, " \t");
		if (count == 3 || len >= sizes[count])
			return -1;
		memcpy(fields[count], p, len);
		fields[count][len] = '\0';
		count++;
		p += len;
	}
}

/* Builds the SNI table of tls_sni_certificates into *out. */
static int
tls_server_load_sni(const struct config *config, struct tls_server_sni **out,
    size_t *count, char **error)
{
	struct config_list_iter iter;
	char item[TLS_SERVER_SNI_NAME_MAX + 2 * TLS_SERVER_PATH_MAX + 8];
	char name[TLS_SERVER_SNI_NAME_MAX + 1];
	char cert[TLS_SERVER_PATH_MAX], key[TLS_SERVER_PATH_MAX];
	char reason[256];
	struct tls_server_sni *sni = NULL;
	size_t n = 0;
	int fields;

	*out = NULL;
	*count = 0;
	config_list_init(&iter, config->tls_sni_certificates);
	while (config_list_next(&iter, item, sizeof(item)) != NULL) {
		SSL_CTX *ctx;

		fields = tls_server_sni_fields(item, name, cert, key);
		if (fields < 2) {
			*error = xasprintf("tls_sni_certificates: \"%s\" is not "
			    "\"name certificate [key]\"", item);
			goto fail;
		}
		if (n == TLS_SERVER_SNI_MAX) {
			*error = xasprintf("tls_sni_certificates: more than %d "
			    "entries", TLS_SERVER_SNI_MAX);
			goto fail;
		}
		if ((ctx = tls_server_context_new(config, error)) == NULL)
			goto fail;
		sni = xreallocarray(sni, n + 1, sizeof(*sni));
		strlcpy_s(sni[n].name, name, sizeof(sni[n].name));
		sni[n].ctx = ctx;
		n++;
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, fields == 3 ? key : cert,
		    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
			*error = xasprintf("tls_sni_certificates: cannot use \"%s\" "
			    "for %s: %s", cert, name, smtp_tls_error(reason,
			    sizeof(reason), "unknown error"));
			goto fail;
		}
	}
	if (iter.error) {
		*error = xstrdup("tls_sni_certificates: an entry is too long");
		goto fail;
	}
	*out = sni;
	*count = n;
	return 0;
fail:
	tls_server_sni_free(sni, n);
	return -1;
}

int
tls_server_load(const struct config *config, char **error)
{
	struct tls_server_sni *sni = NULL;
	size_t sni_count = 0;
	SSL_CTX *ctx;

	if (config->tls_certificate == NULL ||
	    config->tls_certificate[0] == '\0') {
		tls_server_unload();
		return 0;
	}
	if ((ctx = tls_server_context_new(config, error)) == NULL)
		return -1;
	if (tls_server_load_pairs(ctx, config, error) < 0)
		goto fail;
	if (tls_server_load_sni(config, &sni, &sni_count, error) < 0)
		goto fail;
	if (sni_count > 0)
		SSL_CTX_set_tlsext_servername_callback(ctx,
		    tls_server_servername_cb);

	tls_server_unload();
	server_ctx = ctx;
	server_sni = sni;
	server_sni_count = sni_count;
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
	/* Each SSL holds its own reference to the context it uses. */
	SSL_CTX_free(server_ctx);
	server_ctx = NULL;
	tls_server_sni_free(server_sni, server_sni_count);
	server_sni = NULL;
	server_sni_count = 0;
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

/* Verification callback of tls_try_verify_hosts sessions: the result is
 * kept for CV= but never ends the handshake. */
static int
tls_server_try_verify_cb(int preverify_ok, X509_STORE_CTX *store)
{
	(void)preverify_ok;
	(void)store;
	return 1;
}

void
tls_server_session_verify(SSL *ssl, enum tls_server_verify mode)
{
	switch (mode) {
	case TLS_SERVER_VERIFY_NONE:
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
		break;
	case TLS_SERVER_VERIFY_TRY:
		SSL_set_verify(ssl, SSL_VERIFY_PEER, tls_server_try_verify_cb);
		break;
	case TLS_SERVER_VERIFY_REQUIRE:
		SSL_set_verify(ssl, SSL_VERIFY_PEER |
		    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		break;
	}
}

void
tls_server_sni_name(SSL *ssl, char *name, size_t size)
{
	const char *sent = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	strlcpy_s(name, sent != NULL ? sent : "", size);
}

bool
tls_server_peer(SSL *ssl, char *dn, size_t size, bool *verified)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);

	*verified = false;
	if (size > 0)
		dn[0] = '\0';
	if (cert == NULL)
		return false;
	/* The one-line form ("/C=GB/O=Example/CN=client"), as Exim built
	 * with OpenSSL logs it; a longer name is cut to fit. */
	if (size > 0 && size <= INT_MAX &&
	    X509_NAME_oneline(X509_get_subject_name(cert), dn,
	    (int)size) == NULL)
		dn[0] = '\0';
	*verified = SSL_get_verify_result(ssl) == X509_V_OK;
	return true;
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
