/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The keystore (see keystore.h).
 *
 * State directory layout:
 *   .lock            flock()ed while a Keystore is open, so two processes never share the TPM objects
 *   host-key         record of the host key (signs receipts, revocations, audit checkpoints)
 *   keys/<name>      one record per agent key; tombstones keep destroyed names reserved
 *   keys/.wipe-<n>   the previous record of a key being destroyed, zeroed and removed at once, or at
 *                    the next open if the process died in between
 *   .tmp-*           temporary files of atomic writes, removed at open
 *
 * Slots: a TPM guarantees three loaded objects, and a persistent SRK occupies one while used. The
 * cache keeps at most KEYSTORE_MAX_LOADED keys loaded so that loading another (parent + new object)
 * always fits; keys pushed out are context-saved (TPM2_ContextSave, Part 3 §28.2) and flushed, so
 * bringing them back is a ContextLoad rather than a Load under the SRK. Saved contexts die with a TPM
 * reset; blobs do not, so every path falls back to loading the blob.
 */

#include <dirent.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "common/hexutil.h"
#include "common/log.h"
#include "keystore/keystore.h"
#include "keystore/tpm-object.h"
#include "keystore/tpm.h"
#include "keystore/keystore-internal.h"


int keystore_fail(Keystore *ks, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(ks->last_error, sizeof(ks->last_error), fmt, ap);
        va_end(ap);
        log_debug("keystore: %s", ks->last_error);
        return r;
}

/* Fail with the TPM layer's message, noting when the ESAPI context must be rebuilt. */
int keystore_fail_tpm(Keystore *ks, int r, const char *what) {
        /* After a transport failure ESAPI may be stuck mid-command; start from a fresh context. */
        if (r == -ENODEV || r == -ENXIO)
                ks->reconnect = true;
        return keystore_fail(ks, r, "%s: %s", what, ks->tpm ? ks->tpm->last_error : strerror(-r));
}

const char *keystore_last_error(const Keystore *ks) {
        return ks->last_error;
}

const char *keystore_host_id(const Keystore *ks) {
        return ks->host_id;
}

const uint8_t *keystore_srk_name(const Keystore *ks) {
        return ks->srk_name;
}

const char *keystore_tpm_manufacturer(const Keystore *ks) {
        return ks->tpm ? ks->tpm->manufacturer : "";
}

const KeyRecord *keystore_host_key(const Keystore *ks) {
        return ks->host_key;
}

const char *keystore_attestation_error(const Keystore *ks) {
        return ks->ak_error;
}

bool keystore_host_key_replaced(const Keystore *ks) {
        return ks->host_key_replaced;
}

KeystoreEkType keystore_ek_type(const Keystore *ks) {
        return ks->ek_type;
}

/* ---- object cache --------------------------------------------------------------------------- */

static CacheEntry *cache_find(Keystore *ks, const uint8_t kid[KEY_KID_SIZE]) {
        for (size_t i = 0; i < KEYSTORE_MAX_CACHED; i++)
                if (ks->cache[i].used && memcmp(ks->cache[i].kid, kid, KEY_KID_SIZE) == 0)
                        return &ks->cache[i];
        return NULL;
}

static void cache_entry_drop(Keystore *ks, CacheEntry *e) {
        if (e->handle != ESYS_TR_NONE) {
                tpm_flush(ks->tpm, &e->handle);
                ks->n_loaded--;
        }
        free(e->context);
        *e = (CacheEntry) { .handle = ESYS_TR_NONE };
}

/* Forget every TPM object we think is loaded or saved: after a TPM reset none of them exists. */
void keystore_forget_objects(Keystore *ks) {
        for (size_t i = 0; i < KEYSTORE_MAX_CACHED; i++)
                if (ks->cache[i].used)
                        cache_entry_drop(ks, &ks->cache[i]);
        ks->srk_context = mfree(ks->srk_context);
        ks->srk_context_size = 0;
        ks->ak_context = mfree(ks->ak_context);
        ks->ak_context_size = 0;
        ks->n_loaded = 0;
}

int keystore_context_save(Keystore *ks, ESYS_TR handle, uint8_t **ret, size_t *ret_size) {
        _cleanup_esys_ TPMS_CONTEXT *ctx = NULL;
        uint8_t buf[sizeof(TPMS_CONTEXT)];
        size_t off = 0;
        int r;

        /* For objects the TPM copy stays loaded after ContextSave; the caller flushes it. */
        r = TPM_CALL(ks->tpm, "TPM2_ContextSave", Esys_ContextSave(ks->tpm->esys, handle, &ctx));
        if (r < 0)
                return r;
        if (Tss2_MU_TPMS_CONTEXT_Marshal(ctx, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
                return -EINVAL;
        return memdup_sized(buf, off, ret, ret_size);
}

int keystore_context_load(Keystore *ks, const uint8_t *blob, size_t size, ESYS_TR *ret) {
        TPMS_CONTEXT ctx = {};
        size_t off = 0;

        if (Tss2_MU_TPMS_CONTEXT_Unmarshal(blob, size, &off, &ctx) != TSS2_RC_SUCCESS || off != size)
                return -EBADMSG;
        return TPM_CALL(ks->tpm, "TPM2_ContextLoad", Esys_ContextLoad(ks->tpm->esys, &ctx, ret));
}

/* Save a loaded entry's context and flush it: its slot is free, and it reloads cheaply. */
static int cache_entry_unload(Keystore *ks, CacheEntry *e) {
        int r = keystore_context_save(ks, e->handle, &e->context, &e->context_size);
        if (r == -ESTALE) {
                /* The TPM was reset: nothing we had loaded exists any more, so there is room. */
                keystore_forget_objects(ks);
                return 0;
        }
        if (r == -ENODEV || r == -ENXIO)
                return r;
        if (r < 0)
                log_debug("Saving context of a cached key failed, dropping it: %s", strerror(-r));
        tpm_flush(ks->tpm, &e->handle);
        ks->n_loaded--;
        if (r < 0)
                cache_entry_drop(ks, e);
        return 0;
}

/* Push loaded keys out (least recently used first) until at most max remain loaded. */
int keystore_cache_make_room(Keystore *ks, unsigned max) {
        while (ks->n_loaded > max) {
                CacheEntry *lru = NULL;
                for (size_t i = 0; i < KEYSTORE_MAX_CACHED; i++) {
                        CacheEntry *e = &ks->cache[i];
                        if (e->used && e->handle != ESYS_TR_NONE && (!lru || e->tick < lru->tick))
                                lru = e;
                }
                if (!lru) {
                        ks->n_loaded = 0;
                        break;
                }
                int r = cache_entry_unload(ks, lru);
                if (r < 0)
                        return r;
        }
        return 0;
}

/*
 * h was just loaded. The TPM gives a new object the lowest free handle: if an entry we believe loaded has
 * the same TPM handle, the TPM lost our objects without telling us — a TPM Restart (TPM2_Shutdown(STATE),
 * then TPM2_Startup(CLEAR), Part 1 §36.2) flushes transient objects but leaves saved contexts loadable,
 * so no command failed. Such a stale entry must not be used, saved or flushed any more: it would act on
 * the new object (a ContextSave under the wrong entry hands one key's object to another). Entries whose
 * handle differs are checked by Name, once, in this rare case.
 */
static void cache_drop_aliases(Keystore *ks, ESYS_TR h) {
        TPM2_HANDLE th = 0;
        bool aliased = false;

        if (Esys_TR_GetTpmHandle(ks->tpm->esys, h, &th) != TSS2_RC_SUCCESS)
                return;
        for (size_t i = 0; i < KEYSTORE_MAX_CACHED; i++) {
                CacheEntry *e = &ks->cache[i];
                TPM2_HANDLE other = 0;
                if (e->used && e->handle != ESYS_TR_NONE && e->handle != h &&
                    Esys_TR_GetTpmHandle(ks->tpm->esys, e->handle, &other) == TSS2_RC_SUCCESS && other == th)
                        aliased = true;
        }
        if (!aliased)
                return;

        log_debug("TPM handle 0x%08x is handed out again: the TPM lost its objects (TPM Restart?).", th);
        for (size_t i = 0; i < KEYSTORE_MAX_CACHED; i++) {
                CacheEntry *e = &ks->cache[i];
                _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
                _cleanup_esys_ TPM2B_NAME *name = NULL;
                _cleanup_esys_ TPM2B_NAME *qname = NULL;
                TPM2_HANDLE other = 0;

                if (!e->used || e->handle == ESYS_TR_NONE || e->handle == h)
                        continue;
                if (Esys_TR_GetTpmHandle(ks->tpm->esys, e->handle, &other) == TSS2_RC_SUCCESS && other != th &&
                    Esys_ReadPublic(ks->tpm->esys, e->handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, &name,
                                    &qname) == TSS2_RC_SUCCESS &&
                    name->size == KEY_KID_SIZE && memcmp(name->name, e->kid, KEY_KID_SIZE) == 0)
                        continue; /* loaded since, and still there */
                /* Close ESAPI's metadata only: a flush would hit whatever the TPM holds there now. The
                 * saved context, if any, stays: it was taken before the restart and still loads. */
                (void) Esys_TR_Close(ks->tpm->esys, &e->handle);
                e->handle = ESYS_TR_NONE;
                ks->n_loaded--;
        }
}

static CacheEntry *cache_new_entry(Keystore *ks, const uint8_t kid[KEY_KID_SIZE]) {
        CacheEntry *victim = NULL;

        for (size_t i = 0; i < KEYSTORE_MAX_CACHED; i++) {
                CacheEntry *e = &ks->cache[i];
                if (!e->used) {
                        victim = e;
                        break;
                }
                /* Never evict a loaded entry here: keystore_cache_make_room() decides about those. */
                if (e->handle == ESYS_TR_NONE && (!victim || e->tick < victim->tick))
                        victim = e;
        }
        if (!victim)
                return NULL;
        if (victim->used)
                cache_entry_drop(ks, victim);
        victim->used = true;
        victim->handle = ESYS_TR_NONE;
        memcpy(victim->kid, kid, KEY_KID_SIZE);
        return victim;
}

/* ---- storage root key ----------------------------------------------------------------------- */

static int srk_create_primary(Keystore *ks, ESYS_TR *ret, uint8_t ret_name[KEY_KID_SIZE]) {
        _cleanup_esys_ TPM2B_PUBLIC *out_public = NULL;
        _cleanup_esys_ TPM2B_CREATION_DATA *creation_data = NULL;
        _cleanup_esys_ TPM2B_DIGEST *creation_hash = NULL;
        _cleanup_esys_ TPMT_TK_CREATION *creation_ticket = NULL;
        TPM2B_SENSITIVE_CREATE sensitive = {};
        TPM2B_PUBLIC template;
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION pcrs = {};
        ESYS_TR h = ESYS_TR_NONE;
        int r;

        tpm_template_srk(&template);
        r = TPM_CALL(ks->tpm, "TPM2_CreatePrimary (storage root key)",
                     Esys_CreatePrimary(ks->tpm->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                        ESYS_TR_NONE, &sensitive, &template, &outside, &pcrs, &h, &out_public,
                                        &creation_data, &creation_hash, &creation_ticket));
        if (r < 0)
                return r;

        r = tpm_public_name(&out_public->publicArea, ret_name);
        if (r < 0) {
                tpm_flush(ks->tpm, &h);
                return r;
        }
        *ret = h;
        return 0;
}

/* Make the SRK available for one command sequence; keystore_srk_release() undoes it. */
int keystore_srk_acquire(Keystore *ks, ESYS_TR *ret) {
        uint8_t name[KEY_KID_SIZE];
        ESYS_TR h = ESYS_TR_NONE;
        int r;

        if (ks->srk_persistent != ESYS_TR_NONE) {
                *ret = ks->srk_persistent;
                return 0;
        }

        if (ks->srk_context) {
                r = keystore_context_load(ks, ks->srk_context, ks->srk_context_size, &h);
                if (r >= 0) {
                        *ret = h;
                        return 0;
                }
                /* A saved context does not survive a TPM reset; anything we had loaded is gone too. */
                if (r == -ENODEV || r == -ENXIO)
                        return r;
                log_debug("Saved SRK context no longer loads (TPM reset?), re-deriving the SRK.");
                keystore_forget_objects(ks);
        }

        r = srk_create_primary(ks, &h, name);
        if (r < 0)
                return r;
        if (memcmp(name, ks->srk_name, KEY_KID_SIZE) != 0) {
                /* Same template, different key: the owner hierarchy was cleared or this is another TPM. */
                tpm_flush(ks->tpm, &h);
                return keystore_fail(ks, -EMEDIUMTYPE,
                                     "The storage root key changed (owner hierarchy cleared or a different TPM); "
                                     "keys of this state directory cannot be loaded");
        }
        r = keystore_context_save(ks, h, &ks->srk_context, &ks->srk_context_size);
        if (r < 0)
                log_debug("Saving the SRK context failed, will re-derive it next time: %s", strerror(-r));
        *ret = h;
        return 0;
}

void keystore_srk_release(Keystore *ks, ESYS_TR *h) {
        if (*h != ks->srk_persistent)
                tpm_flush(ks->tpm, h);
        *h = ESYS_TR_NONE;
}

/* Use the persistent SRK at 0x81000001 if it has the SRK template; otherwise derive our own. */
static int srk_setup(Keystore *ks) {
        ESYS_TR h = ESYS_TR_NONE;
        int r;

        TSS2_RC rc = Esys_TR_FromTPMPublic(ks->tpm->esys, SRK_PERSISTENT_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE,
                                           ESYS_TR_NONE, &h);
        if (rc == TSS2_RC_SUCCESS) {
                _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
                _cleanup_esys_ TPM2B_NAME *name = NULL;
                _cleanup_esys_ TPM2B_NAME *qname = NULL;

                r = TPM_CALL(ks->tpm, "TPM2_ReadPublic (0x81000001)",
                             Esys_ReadPublic(ks->tpm->esys, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub,
                                             &name, &qname));
                if (r >= 0 && tpm_public_is_usable_srk(&pub->publicArea) && name->size == KEY_KID_SIZE) {
                        memcpy(ks->srk_name, name->name, KEY_KID_SIZE);
                        ks->srk_persistent = h;
                        log_debug("Using the persistent storage root key at 0x%08x.", SRK_PERSISTENT_HANDLE);
                        return 0;
                }
                log_debug("The persistent key at 0x%08x is not a usable SRK; deriving our own.",
                          SRK_PERSISTENT_HANDLE);
                (void) Esys_TR_Close(ks->tpm->esys, &h);
        } else {
                int e = tpm_rc_to_errno(ks->tpm, rc, "looking up 0x81000001");
                if (e == -ENODEV || e == -ENXIO)
                        return keystore_fail_tpm(ks, e, "Looking up the persistent SRK");
        }

        r = srk_create_primary(ks, &h, ks->srk_name);
        if (r < 0)
                return keystore_fail_tpm(ks, r, "Deriving the storage root key");
        r = keystore_context_save(ks, h, &ks->srk_context, &ks->srk_context_size);
        tpm_flush(ks->tpm, &h);
        if (r < 0)
                return keystore_fail_tpm(ks, r, "Saving the storage root key context");
        return 0;
}

static int keystore_compute_host_id(Keystore *ks) {
        uint8_t digest[SHA256_DIGEST_SIZE];
        int r = sha256(ks->srk_name, KEY_KID_SIZE, digest);
        if (r < 0)
                return r;
        hex_encode_to(digest, KEYSTORE_HOST_ID_SIZE, ks->host_id);
        return 0;
}

/* ---- TPM connection ------------------------------------------------------------------------- */

static int keystore_apply_hierarchy_auth(Keystore *ks) {
        struct {
                ESYS_TR hierarchy;
                const SecretBuffer *auth;
        } list[] = {
                { ESYS_TR_RH_OWNER, &ks->owner_auth },
                { ESYS_TR_RH_ENDORSEMENT, &ks->endorsement_auth },
        };

        for (size_t i = 0; i < ELEMENTSOF(list); i++) {
                TPM2B_AUTH a = {};
                if (!list[i].auth->data)
                        continue;
                a.size = (UINT16) list[i].auth->size;
                memcpy(a.buffer, list[i].auth->data, a.size);
                TSS2_RC rc = Esys_TR_SetAuth(ks->tpm->esys, list[i].hierarchy, &a);
                erase(&a, sizeof(a));
                if (rc != TSS2_RC_SUCCESS)
                        return tpm_rc_to_errno(ks->tpm, rc, "setting hierarchy authorisation");
        }
        return 0;
}

static int keystore_connect(Keystore *ks) {
        char err[TPM_ERROR_MAX] = "";
        int r;

        ks->tpm = tpm_close(ks->tpm);
        r = tpm_open(ks->tcti, &ks->tpm, err);
        if (r < 0)
                return keystore_fail(ks, r, "%s", err);
        r = keystore_apply_hierarchy_auth(ks);
        if (r < 0)
                return keystore_fail_tpm(ks, r, "Setting hierarchy passwords");
        ks->reconnect = false;
        return 0;
}

/* Rebuild the ESAPI context after a transport failure; every object handle dies with it. */
int keystore_ensure_connected(Keystore *ks) {
        if (!ks->reconnect)
                return 0;

        for (size_t i = 0; i < KEYSTORE_MAX_CACHED; i++) {
                free(ks->cache[i].context);
                ks->cache[i] = (CacheEntry) { .handle = ESYS_TR_NONE };
        }
        ks->n_loaded = 0;
        ks->srk_context = mfree(ks->srk_context);
        ks->srk_context_size = 0;
        ks->ak_context = mfree(ks->ak_context);
        ks->ak_context_size = 0;
        ks->srk_persistent = ESYS_TR_NONE;

        int r = keystore_connect(ks);
        if (r < 0)
                return r;

        uint8_t old_name[KEY_KID_SIZE];
        memcpy(old_name, ks->srk_name, KEY_KID_SIZE);
        r = srk_setup(ks);
        if (r < 0)
                return r;
        if (memcmp(old_name, ks->srk_name, KEY_KID_SIZE) != 0)
                return keystore_fail(ks, -EMEDIUMTYPE,
                                     "After reconnecting, the TPM has a different storage root key");
        return 0;
}

/* tss2's TPM2_TRANSIENT_FIRST shifts a signed int into the sign bit (undefined behaviour). */
#define TRANSIENT_FIRST ((TPM2_HC) 0x80000000U)

/* Flush every handle of one type (its first handle: transient objects, loaded or saved sessions). */
static int flush_stale_handles(Keystore *ks, TPM2_HC first, const char *what, unsigned *flushed) {
        _cleanup_esys_ TPMS_CAPABILITY_DATA *caps = NULL;
        TPMI_YES_NO more = TPM2_NO;
        int r;

        r = TPM_CALL(ks->tpm, "TPM2_GetCapability (handles)",
                     Esys_GetCapability(ks->tpm->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
                                        first, TPM2_MAX_CAP_HANDLES, &more, &caps));
        if (r < 0)
                return keystore_fail_tpm(ks, r, what);

        for (UINT32 i = 0; i < caps->data.handles.count; i++) {
                ESYS_TR h = ESYS_TR_NONE;
                TPM2_HANDLE th = caps->data.handles.handle[i];
                if (Esys_TR_FromTPMPublic(ks->tpm->esys, th, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &h) !=
                    TSS2_RC_SUCCESS)
                        continue;
                tpm_flush(ks->tpm, &h);
                (*flushed)++;
        }
        return 0;
}

static int flush_stale_transients(Keystore *ks) {
        unsigned objects = 0, sessions = 0;
        int r;

        r = flush_stale_handles(ks, TRANSIENT_FIRST, "Listing transient handles", &objects);
        /* A process killed mid-command leaves its sessions behind too (policy and EK sessions here), and
         * a TPM holds only a few (TPM_RC_SESSION_MEMORY once they are used up): loaded and saved ones. */
        if (r >= 0)
                r = flush_stale_handles(ks, TPM2_LOADED_SESSION_FIRST, "Listing loaded sessions", &sessions);
        if (r >= 0)
                r = flush_stale_handles(ks, TPM2_ACTIVE_SESSION_FIRST, "Listing saved sessions", &sessions);
        if (r < 0)
                return r;
        log_debug("Flushed %u stale transient object(s) and %u session(s).", objects, sessions);
        return 0;
}

/* ---- state directory ------------------------------------------------------------------------ */

static int read_hierarchy_auth(const char *path, SecretBuffer *ret) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int r;

        r = read_file_at(AT_FDCWD, path, HIERARCHY_AUTH_MAX + 1, &buf, &size);
        if (r < 0) {
                if (buf)
                        erase(buf, size);
                return r;
        }
        /* A single trailing newline is an artefact of editors and echo, not part of the password. */
        if (size > 0 && buf[size - 1] == '\n')
                buf[--size] = 0;
        if (size > HIERARCHY_AUTH_MAX) {
                erase(buf, size);
                return -E2BIG;
        }
        ret->data = TAKE_PTR(buf);
        ret->size = size;
        return 0;
}

/* Open (creating if missing) a directory that only its owner, the caller, may write. */
static int open_private_dir(int at_fd, const char *path, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (mkdirat(at_fd, path, 0700) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(at_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        /* Anyone else able to write here could plant or swap key records. */
        if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
                return -EPERM;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Finish what a crash interrupted: temporary files and records awaiting their wipe. */
/*
 * Finish wiping the old record of a destroy: wipe_name is a hard link made before the tombstone was
 * written. If live_name still is the same file, the tombstone never landed (the process died in
 * between): the key was not destroyed, so only the extra link goes — zeroing it would zero the live
 * record too.
 */
static int finish_wipe(int dir_fd, const char *wipe_name, const char *live_name) {
        struct stat w, l;

        if (fstatat(dir_fd, wipe_name, &w, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (live_name && fstatat(dir_fd, live_name, &l, AT_SYMLINK_NOFOLLOW) == 0 && l.st_dev == w.st_dev &&
            l.st_ino == w.st_ino) {
                if (unlinkat(dir_fd, wipe_name, 0) < 0)
                        return -errno;
                return fsync_directory(dir_fd);
        }
        return wipe_file_at(dir_fd, wipe_name);
}

static void keystore_cleanup_dir(Keystore *ks, int dir_fd) {
        _cleanup_close_ int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        DIR *d;

        if (fd < 0 || !(d = fdopendir(fd)))
                return;
        fd = -EBADF; /* owned by d now */
        rewinddir(d);

        for (struct dirent *de; (de = readdir(d));) {
                int r = 0;
                /* Leftover temporary files may hold a record with its authValue: wipe, not just unlink. */
                if (strncmp(de->d_name, TMP_FILE_PREFIX, strlen(TMP_FILE_PREFIX)) == 0)
                        r = wipe_file_at(dir_fd, de->d_name);
                else if (strncmp(de->d_name, WIPE_PREFIX, strlen(WIPE_PREFIX)) == 0)
                        r = finish_wipe(dir_fd, de->d_name, de->d_name + strlen(WIPE_PREFIX));
                if (r < 0)
                        log_debug("Cleaning up %s failed: %s", de->d_name, strerror(-r));
        }
        closedir(d);
}

/* ---- records ------------------------------------------------------------------------------- */

static int keystore_write_record(Keystore *ks, int dir_fd, const char *file, const KeyRecord *r, unsigned flags) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int k;

        k = key_record_to_cbor(r, &buf, &size);
        if (k < 0)
                return keystore_fail(ks, k, "Encoding the record of '%s' failed: %s", r->name, strerror(-k));
        k = write_file_atomic_at(dir_fd, file, buf, size, 0600, flags);
        erase(buf, size);
        if (k == -EEXIST)
                return keystore_fail(ks, k, "A key named '%s' exists", r->name);
        if (k < 0)
                return keystore_fail(ks, k, "Writing the record of '%s' failed: %s", r->name, strerror(-k));
        return 0;
}

static int keystore_read_record(Keystore *ks, int dir_fd, const char *file, KeyRecord **ret) {
        _cleanup_free_ uint8_t *buf = NULL;
        const char *reason = NULL;
        size_t size = 0;
        int r;

        r = read_file_at(dir_fd, file, KEY_RECORD_MAX_SIZE, &buf, &size);
        if (r == -EFBIG)
                return keystore_fail(ks, -EBADMSG, "Record '%s' is larger than %u bytes", file, KEY_RECORD_MAX_SIZE);
        if (r < 0)
                return keystore_fail(ks, r, "Reading record '%s' failed: %s", file, strerror(-r));

        r = key_record_from_cbor(buf, size, ret, &reason);
        erase(buf, size);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return keystore_fail(ks, -EBADMSG, "Record '%s' is corrupt: %s", file,
                                     reason ?: strerror(-r));
        return 0;
}

int keystore_key_check(Keystore *ks, const KeyRecord *r) {
        TPM2B_PUBLIC pub;
        uint8_t name[KEY_KID_SIZE];

        if (r->state == KEY_STATE_DESTROYED)
                return keystore_fail(ks, -EKEYREVOKED, "Key '%s' was destroyed", r->name);
        if (memcmp(r->parent, ks->srk_name, KEY_KID_SIZE) != 0)
                return keystore_fail(ks, -EMEDIUMTYPE,
                                     "Key '%s' was created under another storage root key (another TPM, or the "
                                     "owner hierarchy was cleared)", r->name);
        if (tpm_unmarshal_public(r->pub, r->pub_size, &pub) < 0 || !tpm_public_is_signing_key(&pub.publicArea) ||
            tpm_public_name(&pub.publicArea, name) < 0 || memcmp(name, r->kid, KEY_KID_SIZE) != 0)
                return keystore_fail(ks, -EBADMSG, "Key '%s' has a public area that is not an agentid signing key",
                                     r->name);
        return 0;
}

int keystore_load_record(Keystore *ks, const char *name, KeyRecord **ret) {
        _cleanup_(key_record_freep) KeyRecord *r = NULL;
        int k;

        if (!key_name_is_valid(name))
                return keystore_fail(ks, -EINVAL, "Invalid key name");
        k = keystore_read_record(ks, ks->keys_fd, name, &r);
        if (k < 0)
                return k;
        if (!streq(r->name, name))
                return keystore_fail(ks, -EBADMSG, "Record '%s' names another key ('%s')", name, r->name);
        *ret = TAKE_PTR(r);
        return 0;
}

int keystore_load_all(Keystore *ks, KeystoreProblemFn report, void *userdata, KeyRecord ***ret, size_t *ret_n) {
        _cleanup_close_ int fd = fcntl(ks->keys_fd, F_DUPFD_CLOEXEC, 3);
        KeyRecord **list = NULL;
        size_t n = 0, allocated = 0;
        DIR *d;
        int r = 0;

        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d)
                return -errno;
        fd = -EBADF;
        rewinddir(d);

        for (struct dirent *de; (errno = 0, de = readdir(d));) {
                KeyRecord *rec = NULL;

                if (de->d_name[0] == '.')
                        continue;
                if (!key_name_is_valid(de->d_name)) {
                        if (report)
                                report(de->d_name, -EINVAL, "file name is not a valid key name", userdata);
                        continue;
                }
                int k = keystore_load_record(ks, de->d_name, &rec);
                if (k == -ENOMEM) {
                        r = k;
                        break;
                }
                if (k < 0) {
                        if (report)
                                report(de->d_name, k, ks->last_error, userdata);
                        continue;
                }
                if (n == allocated) {
                        size_t na = allocated ? allocated * 2 : 16;
                        KeyRecord **nl = reallocarray(list, na, sizeof(*list));
                        if (!nl) {
                                key_record_free(rec);
                                r = -ENOMEM;
                                break;
                        }
                        list = nl;
                        allocated = na;
                }
                list[n++] = rec;
        }
        if (r == 0 && errno != 0)
                r = -errno;
        closedir(d);

        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        key_record_free(list[i]);
                free(list);
                return r;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

/* ---- key creation --------------------------------------------------------------------------- */

static int keystore_tpm_create(Keystore *ks, const uint8_t auth[KEY_AUTH_SIZE], TPM2B_PUBLIC **ret_pub,
                               TPM2B_PRIVATE **ret_priv) {
        _cleanup_esys_ TPM2B_CREATION_DATA *creation_data = NULL;
        _cleanup_esys_ TPM2B_DIGEST *creation_hash = NULL;
        _cleanup_esys_ TPMT_TK_CREATION *creation_ticket = NULL;
        TPM2B_SENSITIVE_CREATE sensitive = {};
        TPM2B_PUBLIC template;
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION pcrs = {};
        ESYS_TR srk = ESYS_TR_NONE;
        int r;

        tpm_template_signing_key(&template);
        sensitive.sensitive.userAuth.size = KEY_AUTH_SIZE;
        memcpy(sensitive.sensitive.userAuth.buffer, auth, KEY_AUTH_SIZE);

        /* TPM2_Create needs the parent loaded and a free slot to build the object in (measured: with
         * three objects loaded it fails with TPM_RC_OBJECT_MEMORY). */
        r = keystore_cache_make_room(ks, KEYSTORE_MAX_LOADED - 1);
        if (r >= 0)
                r = keystore_srk_acquire(ks, &srk);
        if (r >= 0) {
                r = TPM_CALL(ks->tpm, "TPM2_Create",
                             Esys_Create(ks->tpm->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                         &sensitive, &template, &outside, &pcrs, ret_priv, ret_pub,
                                         &creation_data, &creation_hash, &creation_ticket));
                keystore_srk_release(ks, &srk);
        }
        erase(&sensitive, sizeof(sensitive));
        return r;
}

static int keystore_check_spec(Keystore *ks, const KeySpec *spec, uint64_t now) {
        if (!key_name_is_valid(spec->name))
                return keystore_fail(ks, -EINVAL, "Invalid key name (allowed: [a-z0-9][a-z0-9._-]{0,63})");
        if (!key_owner_is_valid(spec->owner))
                return keystore_fail(ks, -EINVAL, "Invalid owner (1..%u bytes of UTF-8 without control characters)",
                                     KEY_OWNER_MAX);
        if (spec->description && !key_description_is_valid(spec->description))
                return keystore_fail(ks, -EINVAL,
                                     "Invalid description (at most %u bytes of UTF-8 without control characters)",
                                     KEY_DESCRIPTION_MAX);
        if (spec->uid == UINT32_MAX)
                return keystore_fail(ks, -EINVAL, "Invalid uid");
        if (spec->not_after != 0 && spec->not_after <= now)
                return keystore_fail(ks, -EINVAL, "Expiry is not in the future");
        return 0;
}

/* A new TPM key and its record in memory (not written yet). */
static int keystore_make_key(Keystore *ks, const KeySpec *spec, uint64_t now, KeyRecord **ret) {
        _cleanup_(key_record_freep) KeyRecord *rec = NULL;
        _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
        _cleanup_esys_ TPM2B_PRIVATE *priv = NULL;
        int r;

        rec = calloc(1, sizeof(*rec));
        if (!rec)
                return -ENOMEM;
        rec->name = strdup(spec->name);
        rec->owner = strdup(spec->owner);
        if (!rec->name || !rec->owner || (spec->description && !(rec->description = strdup(spec->description))))
                return -ENOMEM;
        rec->uid = spec->uid;
        rec->created = now;
        rec->not_after = spec->not_after;
        if (spec->exe_sha256) {
                rec->has_exe_digest = true;
                memcpy(rec->exe_sha256, spec->exe_sha256, KEY_EXE_DIGEST_SIZE);
        }
        rec->named_tasks_only = spec->named_tasks_only;
        rec->state = KEY_STATE_ACTIVE;
        memcpy(rec->parent, ks->srk_name, KEY_KID_SIZE);

        /* A random authValue per key: a copied blob alone is not enough to use the key. */
        r = random_bytes(rec->auth, KEY_AUTH_SIZE);
        if (r < 0)
                return keystore_fail(ks, r, "Generating the key's authorisation value failed");

        r = keystore_ensure_connected(ks);
        if (r < 0)
                return r;
        r = keystore_tpm_create(ks, rec->auth, &pub, &priv);
        if (r == -EMEDIUMTYPE)
                return r; /* keystore_srk_acquire() said why; the TPM layer's last message is older */
        if (r < 0)
                return keystore_fail_tpm(ks, r, "Creating the TPM key");

        /* Defence in depth: the TPM must have created exactly what the template asked for. */
        if (!tpm_public_is_signing_key(&pub->publicArea))
                return keystore_fail(ks, -EIO, "The TPM returned a key with unexpected attributes");
        _cleanup_free_ uint8_t *pub_blob = NULL, *priv_blob = NULL;
        size_t pub_size = 0, priv_size = 0;
        r = tpm_public_name(&pub->publicArea, rec->kid);
        if (r >= 0)
                r = tpm_marshal_public(pub, &pub_blob, &pub_size);
        if (r >= 0)
                r = tpm_marshal_private(priv, &priv_blob, &priv_size);
        if (r >= 0)
                r = key_record_set_blobs(rec, pub_blob, pub_size, priv_blob, priv_size);
        erase(priv, sizeof(*priv));
        erase(priv_blob, priv_size);
        if (r < 0)
                return keystore_fail(ks, r, "Marshalling the new key failed");

        *ret = TAKE_PTR(rec);
        return 0;
}

static int keystore_new_key(Keystore *ks, const KeySpec *spec, uint64_t now, int dir_fd, const char *file,
                            KeyRecord **ret) {
        _cleanup_(key_record_freep) KeyRecord *rec = NULL;
        int r;

        r = keystore_check_spec(ks, spec, now);
        if (r < 0)
                return r;
        /* Cheap early refusal; the no-replace rename below is what actually guarantees it. */
        if (faccessat(dir_fd, file, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return keystore_fail(ks, -EEXIST, "A key named '%s' exists", spec->name);

        r = keystore_make_key(ks, spec, now, &rec);
        if (r < 0)
                return r;
        r = keystore_write_record(ks, dir_fd, file, rec, WRITE_FILE_NOREPLACE);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(rec);
        return 0;
}

int keystore_create_key(Keystore *ks, const KeySpec *spec, uint64_t now, KeyRecord **ret) {
        if (!spec || !spec->name)
                return keystore_fail(ks, -EINVAL, "Missing key name");
        return keystore_new_key(ks, spec, now, ks->keys_fd, spec->name, ret);
}

static int keystore_setup_host_key(Keystore *ks) {
        _cleanup_(key_record_freep) KeyRecord *rec = NULL;
        int r;

        r = keystore_read_record(ks, ks->state_fd, HOST_KEY_FILE, &rec);
        if (r >= 0 && keystore_key_check(ks, rec) == -EMEDIUMTYPE) {
                /* The owner hierarchy was cleared (or the state moved to another TPM): the old host key
                 * cannot load any more. Keep its record, whose public key still verifies old receipts,
                 * and make a new one so the daemon keeps working. */
                char retired[64];
                snprintf(retired, sizeof(retired), HOST_KEY_FILE ".retired-%" PRIu64, (uint64_t) time(NULL));
                /* The AKs were made under the old owner hierarchy's EK seeds too: marked first, so the
                 * start after a stop here still checks them (the host key looks fine by then). */
                r = keystore_mark_aks_for_check(ks);
                if (r < 0)
                        return keystore_fail(ks, r, "Marking the attestation keys for a check failed: %s",
                                             strerror(-r));
                if (renameat(ks->state_fd, HOST_KEY_FILE, ks->state_fd, retired) < 0)
                        return keystore_fail(ks, -errno, "Retiring the unusable host key failed: %m");
                (void) fsync_directory(ks->state_fd);
                ks->host_key_replaced = true;
                rec = key_record_free(rec);
                r = -ENOENT;
        }
        if (r == -ENOENT) {
                const KeySpec spec = {
                        .name = HOST_KEY_NAME,
                        .owner = HOST_KEY_OWNER,
                        .description = "signs receipts, revocation lists and audit checkpoints",
                        .uid = (uint32_t) geteuid(),
                };
                r = keystore_new_key(ks, &spec, (uint64_t) time(NULL), ks->state_fd, HOST_KEY_FILE, &rec);
                if (r < 0)
                        return r;
                log_debug("Created the host key.");
        } else if (r < 0)
                return r;

        r = keystore_key_check(ks, rec);
        if (r < 0)
                return r;
        ks->host_key = TAKE_PTR(rec);
        return 0;
}

/* ---- signing -------------------------------------------------------------------------------- */

/* Load the key (from cache, saved context or blob) and return its handle with auth set. */
int keystore_key_acquire(Keystore *ks, const KeyRecord *r, ESYS_TR *ret, bool *ret_cached) {
        CacheEntry *e = cache_find(ks, r->kid);
        TPM2B_AUTH auth = { .size = KEY_AUTH_SIZE };
        ESYS_TR h = ESYS_TR_NONE;
        int k;

        *ret_cached = false;
        if (e && e->handle != ESYS_TR_NONE) {
                e->tick = ++ks->tick;
                *ret = e->handle;
                *ret_cached = true;
                return 0;
        }

        /* Bringing one in needs a free slot, and a Load needs the parent's slot too. */
        k = keystore_cache_make_room(ks, KEYSTORE_MAX_LOADED - 1);
        if (k < 0)
                return k;

        if (e && e->context) {
                k = keystore_context_load(ks, e->context, e->context_size, &h);
                e->context = mfree(e->context);
                e->context_size = 0;
                if (k == -ENODEV || k == -ENXIO)
                        return k;
                if (k < 0)
                        log_debug("Saved context of '%s' no longer loads, loading the blob: %s", r->name,
                                  strerror(-k));
        }

        if (h == ESYS_TR_NONE) {
                TPM2B_PUBLIC pub;
                TPM2B_PRIVATE priv;
                ESYS_TR srk = ESYS_TR_NONE;
                _cleanup_esys_ TPM2B_NAME *name = NULL;

                if (tpm_unmarshal_public(r->pub, r->pub_size, &pub) < 0 ||
                    tpm_unmarshal_private(r->priv, r->priv_size, &priv) < 0)
                        return keystore_fail(ks, -EBADMSG, "The blobs of key '%s' do not unmarshal", r->name);

                k = keystore_srk_acquire(ks, &srk);
                if (k >= 0) {
                        k = TPM_CALL(ks->tpm, "TPM2_Load",
                                     Esys_Load(ks->tpm->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                               &priv, &pub, &h));
                        keystore_srk_release(ks, &srk);
                }
                erase(&priv, sizeof(priv));
                if (k < 0)
                        return k;

                /* The loaded object must be the key the record names. */
                k = TPM_CALL(ks->tpm, "Esys_TR_GetName", Esys_TR_GetName(ks->tpm->esys, h, &name));
                if (k < 0 || name->size != KEY_KID_SIZE || memcmp(name->name, r->kid, KEY_KID_SIZE) != 0) {
                        tpm_flush(ks->tpm, &h);
                        return k < 0 ? k : keystore_fail(ks, -EBADMSG, "Key '%s' does not match its kid", r->name);
                }
        }

        memcpy(auth.buffer, r->auth, KEY_AUTH_SIZE);
        TSS2_RC rc = Esys_TR_SetAuth(ks->tpm->esys, h, &auth);
        erase(&auth, sizeof(auth));
        if (rc != TSS2_RC_SUCCESS) {
                tpm_flush(ks->tpm, &h);
                return tpm_rc_to_errno(ks->tpm, rc, "Esys_TR_SetAuth");
        }

        cache_drop_aliases(ks, h);
        /* keystore_srk_acquire() forgets every cached object when it finds the TPM reset, e included:
         * look again, or the new handle lands in a dropped entry and its slot is never given back. */
        e = cache_find(ks, r->kid);
        if (!e)
                e = cache_new_entry(ks, r->kid);
        if (e) {
                e->handle = h;
                e->tick = ++ks->tick;
                ks->n_loaded++;
        }
        /* Without a cache entry (all loaded, cannot happen with MAX_LOADED < MAX_CACHED) the caller
         * would leak the handle: refuse instead. */
        if (!e) {
                tpm_flush(ks->tpm, &h);
                return keystore_fail(ks, -ENOBUFS, "No cache entry for key '%s'", r->name);
        }
        *ret = h;
        return 0;
}

static int keystore_sign_once(Keystore *ks, const KeyRecord *r, const uint8_t digest[KEYSTORE_DIGEST_SIZE],
                              uint8_t ret_sig[KEYSTORE_SIGNATURE_SIZE], bool *ret_cached) {
        _cleanup_esys_ TPMT_SIGNATURE *sig = NULL;
        TPM2B_DIGEST d = { .size = KEYSTORE_DIGEST_SIZE };
        /* Key scheme applies (ECDSA-SHA256); an unrestricted key accepts a NULL ticket (Part 3 §20.2). */
        TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL };
        TPMT_TK_HASHCHECK ticket = { .tag = TPM2_ST_HASHCHECK, .hierarchy = TPM2_RH_NULL };
        ESYS_TR h = ESYS_TR_NONE;
        int k;

        k = keystore_key_acquire(ks, r, &h, ret_cached);
        if (k < 0)
                return k;

        memcpy(d.buffer, digest, KEYSTORE_DIGEST_SIZE);
        k = TPM_CALL(ks->tpm, "TPM2_Sign",
                     Esys_Sign(ks->tpm->esys, h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &d, &scheme,
                               &ticket, &sig));
        if (k < 0)
                return k;

        const TPMS_SIGNATURE_ECC *ecc = &sig->signature.ecdsa;
        if (sig->sigAlg != TPM2_ALG_ECDSA || ecc->hash != TPM2_ALG_SHA256 || ecc->signatureR.size > 32 ||
            ecc->signatureS.size > 32)
                return keystore_fail(ks, -EIO, "The TPM returned an unexpected signature format");

        /* Part 2 §11.3.4: r and s are TPM2B_ECC_PARAMETERs and may come without leading zeros. */
        memset(ret_sig, 0, KEYSTORE_SIGNATURE_SIZE);
        memcpy(ret_sig + 32 - ecc->signatureR.size, ecc->signatureR.buffer, ecc->signatureR.size);
        memcpy(ret_sig + 64 - ecc->signatureS.size, ecc->signatureS.buffer, ecc->signatureS.size);
        return 0;
}

int keystore_sign(Keystore *ks, const KeyRecord *r, const uint8_t digest[KEYSTORE_DIGEST_SIZE],
                  uint8_t ret_sig[KEYSTORE_SIGNATURE_SIZE]) {
        bool cached = false;
        int k;

        if (r->state != KEY_STATE_ACTIVE)
                return keystore_fail(ks, -EKEYREVOKED, "Key '%s' was destroyed", r->name);
        if (memcmp(r->parent, ks->srk_name, KEY_KID_SIZE) != 0)
                return keystore_fail(ks, -EMEDIUMTYPE, "Key '%s' belongs to another storage root key", r->name);

        k = keystore_ensure_connected(ks);
        if (k < 0)
                return k;

        k = keystore_sign_once(ks, r, digest, ret_sig, &cached);
        /* A stale handle means the TPM was reset under us; a cached handle rejecting the key's own
         * authValue means the slot now holds someone else's object. Either way: reload and retry once. */
        if (k == -ESTALE || (k == -EKEYREJECTED && cached)) {
                log_debug("Key '%s': %s; reloading from the blob.", r->name, ks->tpm->last_error);
                keystore_forget_objects(ks);
                k = keystore_sign_once(ks, r, digest, ret_sig, &cached);
        }
        if (k < 0 && k != -EMEDIUMTYPE && k != -EBADMSG)
                return keystore_fail_tpm(ks, k, "Signing");
        /* The host key signs rarely (receipts, lists, checkpoints): its slot is worth more to agents. */
        if (k >= 0 && r == ks->host_key) {
                CacheEntry *e = cache_find(ks, r->kid);
                if (e && e->handle != ESYS_TR_NONE)
                        (void) cache_entry_unload(ks, e);
        }
        return k;
}

/* ---- destruction ---------------------------------------------------------------------------- */

/*
 * Replace the record of new->name with new, and wipe the old file: the old record stays reachable
 * under a second name until the new one is in place; a crash in between leaves the .wipe- file for
 * the next open.
 */
static int keystore_replace_record(Keystore *ks, const KeyRecord *new) {
        _cleanup_free_ char *wipe = NULL;
        int k;

        if (asprintf(&wipe, WIPE_PREFIX "%s", new->name) < 0)
                return -ENOMEM;
        (void) finish_wipe(ks->keys_fd, wipe, new->name);
        if (linkat(ks->keys_fd, new->name, ks->keys_fd, wipe, 0) < 0 && errno != ENOENT)
                return keystore_fail(ks, -errno, "Preparing to wipe the record of '%s' failed: %m", new->name);

        k = keystore_write_record(ks, ks->keys_fd, new->name, new, 0);
        if (k < 0) {
                (void) unlinkat(ks->keys_fd, wipe, 0);
                return k;
        }

        k = finish_wipe(ks->keys_fd, wipe, new->name);
        if (k < 0)
                log_debug("Wiping the old record of '%s' failed, will retry at next start: %s", new->name,
                          strerror(-k));
        return 0;
}

int keystore_destroy_key(Keystore *ks, KeyRecord *r, uint64_t now) {
        _cleanup_(key_record_freep) KeyRecord *tomb = NULL;
        int k;

        if (r == ks->host_key || (ks->host_key && memcmp(r->kid, ks->host_key->kid, KEY_KID_SIZE) == 0))
                return keystore_fail(ks, -EPERM, "The host key cannot be destroyed");
        if (r->state == KEY_STATE_DESTROYED)
                return keystore_fail(ks, -EKEYREVOKED, "Key '%s' was already destroyed", r->name);

        /* The tombstone keeps what a revocation entry names, in case the list ever loses it; a key
         * whose public area cannot be read (never usable) has nothing to name. */
        uint8_t spki[KEY_SPKI_DIGEST_SIZE];
        k = keystore_key_spki_sha256(r, spki);
        if (k == -ENOMEM || k == -EIO)
                return keystore_fail(ks, k, "Hashing the public key of '%s' failed", r->name);
        bool has_spki = k >= 0;

        /* The key stops being usable first: drop any loaded or saved copy from the TPM. */
        CacheEntry *e = cache_find(ks, r->kid);
        if (e)
                cache_entry_drop(ks, e);

        k = key_record_copy(r, &tomb);
        if (k < 0)
                return k;
        key_record_make_tombstone(tomb, now);
        if (has_spki) {
                tomb->has_spki = true;
                memcpy(tomb->spki_sha256, spki, sizeof(spki));
        }

        k = keystore_replace_record(ks, tomb);
        if (k < 0)
                return k;
        key_record_make_tombstone(r, now);
        r->has_spki = tomb->has_spki;
        memcpy(r->spki_sha256, tomb->spki_sha256, sizeof(r->spki_sha256));
        return 0;
}

/* ---- rotation ------------------------------------------------------------------------------- */

int keystore_rotate_begin(Keystore *ks, const KeyRecord *old, const uint8_t old_spki_sha256[KEY_SPKI_DIGEST_SIZE],
                          const char *reason, uint64_t now, KeyRecord **ret) {
        _cleanup_(key_record_freep) KeyRecord *rec = NULL;
        int k;

        if (old == ks->host_key || (ks->host_key && memcmp(old->kid, ks->host_key->kid, KEY_KID_SIZE) == 0))
                return keystore_fail(ks, -EPERM, "The host key cannot be rotated");
        if (old->state == KEY_STATE_DESTROYED)
                return keystore_fail(ks, -EKEYREVOKED, "Key '%s' was destroyed", old->name);
        if (!key_text_is_valid(reason, KEY_REASON_MAX, true))
                return keystore_fail(ks, -EINVAL, "Invalid rotation reason");

        /* Same name, owner, uid, expiry and workload pin: only the TPM key changes. */
        const KeySpec spec = {
                .name = old->name,
                .owner = old->owner,
                .description = old->description,
                .uid = old->uid,
                .not_after = old->not_after,
                .exe_sha256 = old->has_exe_digest ? old->exe_sha256 : NULL,
                .named_tasks_only = old->named_tasks_only,
        };
        k = keystore_check_spec(ks, &spec, now);
        if (k < 0)
                return k;
        k = keystore_make_key(ks, &spec, now, &rec);
        if (k < 0)
                return k;

        k = key_record_set_replaces(rec, old->kid, old_spki_sha256, reason);
        if (k < 0)
                return k;

        *ret = TAKE_PTR(rec);
        return 0;
}

int keystore_rotate_commit(Keystore *ks, const KeyRecord *old, const KeyRecord *new) {
        int k;

        if (!new->replaces || memcmp(new->replaces->kid, old->kid, KEY_KID_SIZE) != 0 ||
            strcmp(new->name, old->name) != 0)
                return keystore_fail(ks, -EINVAL, "The new record does not replace this key");

        k = keystore_replace_record(ks, new);
        if (k < 0)
                return k;
        /* The old key is gone from disk; drop its loaded or saved copy from the TPM too. */
        CacheEntry *e = cache_find(ks, old->kid);
        if (e)
                cache_entry_drop(ks, e);
        return 0;
}

/* ---- public key export ---------------------------------------------------------------------- */

int keystore_key_public_point(const KeyRecord *r, uint8_t x[P256_COORD_SIZE], uint8_t y[P256_COORD_SIZE]) {
        TPM2B_PUBLIC pub;
        int k;

        if (!r->pub)
                return -EKEYREVOKED;
        k = tpm_unmarshal_public(r->pub, r->pub_size, &pub);
        if (k < 0)
                return k;
        const TPMT_PUBLIC *p = &pub.publicArea;
        const TPMS_ECC_POINT *q = &p->unique.ecc;
        if (p->type != TPM2_ALG_ECC || p->parameters.eccDetail.curveID != TPM2_ECC_NIST_P256)
                return -EINVAL;
        if (q->x.size > P256_COORD_SIZE || q->y.size > P256_COORD_SIZE)
                return -EBADMSG;
        /* Some TPMs strip leading zero bytes of coordinates: left-pad to the field size. */
        memset(x, 0, P256_COORD_SIZE);
        memset(y, 0, P256_COORD_SIZE);
        memcpy(x + P256_COORD_SIZE - q->x.size, q->x.buffer, q->x.size);
        memcpy(y + P256_COORD_SIZE - q->y.size, q->y.buffer, q->y.size);
        return 0;
}

int keystore_key_public_der(const KeyRecord *r, uint8_t **ret, size_t *ret_size) {
        uint8_t x[P256_COORD_SIZE], y[P256_COORD_SIZE];
        int k;

        /* Encoded directly: agentidd computes this for every key at start-up, and OpenSSL 3's
         * EVP_PKEY_fromdata() + i2d_PUBKEY() took about a millisecond per key (docs/performance.md). */
        k = keystore_key_public_point(r, x, y);
        if (k < 0)
                return k;
        return p256_spki_from_xy(x, y, ret, ret_size);
}

int keystore_key_spki_sha256(const KeyRecord *r, uint8_t ret[KEY_SPKI_DIGEST_SIZE]) {
        uint8_t x[P256_COORD_SIZE], y[P256_COORD_SIZE], der[P256_SPKI_DER_SIZE];
        int k = keystore_key_public_point(r, x, y);
        if (k < 0)
                return k;
        p256_spki_write(x, y, der);
        return sha256(der, sizeof(der), ret);
}

int keystore_key_public_area(const KeyRecord *r, uint8_t **ret, size_t *ret_size) {
        TPM2B_PUBLIC pub;
        uint8_t buf[sizeof(TPMT_PUBLIC)];
        size_t off = 0;
        int k;

        if (!r->pub)
                return -EKEYREVOKED;
        k = tpm_unmarshal_public(r->pub, r->pub_size, &pub);
        if (k < 0)
                return k;
        if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub.publicArea, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
                return -EINVAL;
        return memdup_sized(buf, off, ret, ret_size);
}

/* ---- open / free ---------------------------------------------------------------------------- */

Keystore *keystore_free(Keystore *ks) {
        if (!ks)
                return NULL;

        if (ks->tpm && !ks->reconnect)
                for (size_t i = 0; i < KEYSTORE_MAX_CACHED; i++)
                        if (ks->cache[i].used)
                                cache_entry_drop(ks, &ks->cache[i]);
        for (size_t i = 0; i < KEYSTORE_MAX_CACHED; i++)
                free(ks->cache[i].context);
        if (ks->tpm && ks->srk_persistent != ESYS_TR_NONE)
                (void) Esys_TR_Close(ks->tpm->esys, &ks->srk_persistent);
        free(ks->srk_context);
        free(ks->ak_context);
        free(ks->ak_error);
        free(ks->ak_pub);
        if (ks->ak_priv)
                erase(ks->ak_priv, ks->ak_priv_size);
        free(ks->ak_priv);
        erase(ks->ak_auth, sizeof(ks->ak_auth));
        key_record_free(ks->host_key);
        tpm_close(ks->tpm);
        secret_buffer_done(&ks->owner_auth);
        secret_buffer_done(&ks->endorsement_auth);
        safe_close(ks->keys_fd);
        safe_close(ks->state_fd);
        safe_close(ks->lock_fd); /* releases the flock */
        free(ks->state_dir);
        free(ks->tcti);
        return mfree(ks);
}

int keystore_open(const KeystoreOptions *o, Keystore **ret, char *ret_error) {
        _cleanup_(keystore_freep) Keystore *ks = NULL;
        int r;

        ks = calloc(1, sizeof(*ks));
        if (!ks)
                return -ENOMEM;
        ks->state_fd = ks->keys_fd = ks->lock_fd = -EBADF;
        ks->srk_persistent = ESYS_TR_NONE;
        for (size_t i = 0; i < KEYSTORE_MAX_CACHED; i++)
                ks->cache[i].handle = ESYS_TR_NONE;

        if (!o || !o->tcti || !o->state_dir) {
                r = keystore_fail(ks, -EINVAL, "A TCTI and a state directory are required");
                goto fail;
        }
        ks->tcti = strdup(o->tcti);
        ks->state_dir = strdup(o->state_dir);
        if (!ks->tcti || !ks->state_dir)
                return -ENOMEM;

        r = open_private_dir(AT_FDCWD, o->state_dir, &ks->state_fd);
        if (r < 0) {
                r = keystore_fail(ks, r, r == -EPERM ?
                                  "State directory %s must be owned by uid %u and not writable by group or others" :
                                  "Cannot open state directory %s (uid %u): %s",
                                  o->state_dir, (unsigned) geteuid(), strerror(-r));
                goto fail;
        }

        ks->lock_fd = openat(ks->state_fd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (ks->lock_fd < 0) {
                r = keystore_fail(ks, -errno, "Cannot create the lock file in %s: %m", o->state_dir);
                goto fail;
        }
        if (flock(ks->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ?
                        keystore_fail(ks, -EBUSY, "State directory %s is in use by another process", o->state_dir) :
                        keystore_fail(ks, -errno, "Locking %s failed: %m", o->state_dir);
                goto fail;
        }

        r = open_private_dir(ks->state_fd, KEYS_DIR, &ks->keys_fd);
        if (r < 0) {
                r = keystore_fail(ks, r, "Cannot use %s/" KEYS_DIR ": %s", o->state_dir,
                                  r == -EPERM ? "owned by someone else or writable by group or others" :
                                  strerror(-r));
                goto fail;
        }
        keystore_cleanup_dir(ks, ks->state_fd);
        keystore_cleanup_dir(ks, ks->keys_fd);

        if (o->owner_auth_file && (r = read_hierarchy_auth(o->owner_auth_file, &ks->owner_auth)) < 0) {
                r = keystore_fail(ks, r, "Cannot read the owner hierarchy password from %s: %s", o->owner_auth_file,
                                  r == -E2BIG ? "longer than 64 bytes" : strerror(-r));
                goto fail;
        }
        if (o->endorsement_auth_file &&
            (r = read_hierarchy_auth(o->endorsement_auth_file, &ks->endorsement_auth)) < 0) {
                r = keystore_fail(ks, r, "Cannot read the endorsement hierarchy password from %s: %s",
                                  o->endorsement_auth_file, r == -E2BIG ? "longer than 64 bytes" : strerror(-r));
                goto fail;
        }

        r = keystore_connect(ks);
        if (r < 0)
                goto fail;
        if (o->flush_stale_handles && (r = flush_stale_transients(ks)) < 0)
                goto fail;
        r = srk_setup(ks);
        if (r < 0)
                goto fail;
        r = keystore_compute_host_id(ks);
        if (r < 0) {
                r = keystore_fail(ks, r, "Computing the host id failed");
                goto fail;
        }
        r = keystore_setup_host_key(ks);
        if (r < 0)
                goto fail;
        ks->ek_type = o->ek;
        /* Signing does not need the AK: a TPM whose EK cannot be used (endorsement password not
         * given, no EK) still serves keys; attestation then fails with this message. */
        r = keystore_setup_ak(ks);
        if (r < 0) {
                ks->ak_error = strdup(ks->last_error);
                if (!ks->ak_error)
                        return -ENOMEM;
                ks->last_error[0] = 0;
        }

        *ret = TAKE_PTR(ks);
        return 0;

fail:
        if (ret_error)
                (void) snprintf(ret_error, KEYSTORE_ERROR_MAX, "%s", ks->last_error);
        return r;
}
