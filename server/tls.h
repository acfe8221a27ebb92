/*
 * tls.h - HTTPS served by keystored itself (config `server.tls`, README "TLS"): the certificate
 * chain and private key read and checked at start, and the libmicrohttpd options that serve them
 * with TLS 1.2 and 1.3 only (docs/architecture.md section 6).
 */
#ifndef KS_SERVER_TLS_H
#define KS_SERVER_TLS_H

#include <microhttpd.h>

#include "common/log.h"
#include "common/status.h"
#include "config/config.h"

struct ks_tls;

/*
 * Reads cfg->server.tls's files and checks them: a PEM certificate, an unencrypted PEM private
 * key, and that the key is the certificate's. Errors name the YAML's file:line:column of the path
 * at fault, never the key's contents. Without `server.tls`, *out is NULL and KS_OK. log receives
 * one line with the certificate's subject and expiry (a warning when it has expired).
 */
ks_status ks_tls_load(const struct ks_config *cfg, struct ks_log *log, struct ks_tls **out,
                      struct ks_error *err);

/* MHD_USE_TLS with a loaded t, else 0. */
unsigned ks_tls_flags(const struct ks_tls *t);

/* For MHD_OPTION_ARRAY: certificate, key and the TLS 1.2 + 1.3 priorities; only the end marker
 * for a NULL t. Valid until ks_tls_free. */
const struct MHD_OptionItem *ks_tls_options(const struct ks_tls *t);

/* Wipes the key (OPENSSL_cleanse) and frees. Called as soon as MHD_start_daemon returned: GnuTLS
 * has taken its own parsed copy by then. NULL is a no-op. */
void ks_tls_free(struct ks_tls *t);

#endif
