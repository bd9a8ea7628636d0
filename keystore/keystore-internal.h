/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Keystore internals shared by keystore.c (keys, cache, SRK) and attestation.c (EK, AK, certify and
 * quote). Nothing outside keystore/ includes this header.
 */

#include "keystore/keystore.h"
#include "keystore/tpm.h"

#define KEYSTORE_MAX_LOADED 2U
#define KEYSTORE_MAX_CACHED 64U
#define HOST_KEY_FILE "host-key"
#define HOST_KEY_NAME "host"
#define HOST_KEY_OWNER "agentid host"
#define KEYS_DIR "keys"
#define LOCK_FILE ".lock"
#define WIPE_PREFIX ".wipe-"
/* TPM2B_AUTH holds at most a digest of the largest hash; tss2 sizes it for SHA-512. */
#define HIERARCHY_AUTH_MAX 64U

typedef struct CacheEntry {
        bool used;
        uint8_t kid[KEY_KID_SIZE];
        ESYS_TR handle;          /* loaded object, or ESYS_TR_NONE */
        uint8_t *context;        /* marshalled TPMS_CONTEXT of a saved and flushed object */
        size_t context_size;
        uint64_t tick;           /* last use, for LRU */
} CacheEntry;

struct Keystore {
        Tpm *tpm;
        char *tcti;
        char *state_dir;
        int state_fd;
        int keys_fd;
        int lock_fd;
        bool reconnect;          /* the ESAPI context is unusable; reopen before the next command */

        SecretBuffer owner_auth;
        SecretBuffer endorsement_auth;

        ESYS_TR srk_persistent;  /* SRK at 0x81000001, or ESYS_TR_NONE */
        uint8_t *srk_context;    /* saved context of our transient SRK */
        size_t srk_context_size;
        uint8_t srk_name[KEY_KID_SIZE];
        char host_id[2 * KEYSTORE_HOST_ID_SIZE + 1];

        KeyRecord *host_key;
        bool host_key_replaced;  /* the previous one belonged to another SRK and was retired */

        KeystoreEkType ek_type;
        uint8_t *ak_pub;         /* marshalled TPM2B_PUBLIC / TPM2B_PRIVATE of the AK */
        size_t ak_pub_size;
        uint8_t *ak_priv;
        size_t ak_priv_size;
        uint8_t ak_auth[KEY_AUTH_SIZE];
        char *ak_error;          /* why there is no AK (attestation unavailable), or NULL */
        uint8_t *ak_context;     /* saved context of the loaded AK (valid until the next TPM reset) */
        size_t ak_context_size;

        CacheEntry cache[KEYSTORE_MAX_CACHED];
        unsigned n_loaded;
        uint64_t tick;

        char last_error[KEYSTORE_ERROR_MAX];
};

_printf_(3, 4) int keystore_fail(Keystore *ks, int r, const char *fmt, ...);
/* Fail with the TPM layer's message; transport failures mark the ESAPI context for rebuilding. */
int keystore_fail_tpm(Keystore *ks, int r, const char *what);
int keystore_ensure_connected(Keystore *ks);
/* Forget every cached object and the SRK context (after a TPM reset none of them exists). */
void keystore_forget_objects(Keystore *ks);
int keystore_context_save(Keystore *ks, ESYS_TR handle, uint8_t **ret, size_t *ret_size);
int keystore_context_load(Keystore *ks, const uint8_t *blob, size_t size, ESYS_TR *ret);
/* Push cached keys out (least recently used first) until at most max remain loaded. */
int keystore_cache_make_room(Keystore *ks, unsigned max);
int keystore_srk_acquire(Keystore *ks, ESYS_TR *ret);
void keystore_srk_release(Keystore *ks, ESYS_TR *h);
/* The loaded key of a record (cache, saved context or blob), with its authValue set. */
int keystore_key_acquire(Keystore *ks, const KeyRecord *r, ESYS_TR *ret, bool *ret_cached);

/* Read or create the AK of the configured EK (attestation.c). */
int keystore_setup_ak(Keystore *ks);
/* The owner hierarchy was cleared: mark both AKs to be checked by the next keystore_setup_ak() of
 * their type, durably, so that a stop before then does not skip the check. */
int keystore_mark_aks_for_check(Keystore *ks);
/* -EOPNOTSUPP (with the reason as message) when open could not set up the AK. */
int keystore_require_ak(Keystore *ks);
/* The AK loaded, its authValue set: by ContextLoad of its per-boot saved context, else under the EK
 * (EK + AK loaded for a moment: the caller leaves room for two objects). The caller flushes it. */
int keystore_ak_acquire(Keystore *ks, ESYS_TR *ret);
/* TPM2_Certify of key by the AK with data as qualifyingData: the attest bytes as signed (TPMS_ATTEST,
 * no size prefix) and the marshalled TPMT_SIGNATURE. key must have its authValue set (ADMIN role). */
int keystore_certify(Keystore *ks, ESYS_TR ak, ESYS_TR key, const uint8_t data[32], uint8_t **ret_attest,
                     size_t *ret_attest_size, uint8_t **ret_sig, size_t *ret_sig_size);
