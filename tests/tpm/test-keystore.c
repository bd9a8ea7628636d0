/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The keystore against a real software TPM (suite "tpm"). Every test gets its own swtpm.
 */

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/x509.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tctildr.h>

#include "common/cbor-util.h"
#include "common/crypto-util.h"
#include "common/fileio.h"
#include "keystore/keystore.h"
#include "tests/lib/tpm-sim.h"
#include "tests/tpm/keystore-fixture.h"

static KeyRecord *create_ok(Keystore *ks, const char *name, uint32_t uid) {
        KeySpec spec = { .name = name, .owner = "team-a@example.com", .uid = uid };
        KeyRecord *r = NULL;
        int k = keystore_create_key(ks, &spec, (uint64_t) time(NULL), &r);
        if (k < 0)
                fail_msg("create %s: %s (%d)", name, keystore_last_error(ks), k);
        return r;
}

/* Sign a digest and check the signature with OpenSSL against the exported public key. */
static void sign_and_verify(Keystore *ks, const KeyRecord *r, uint8_t fill) {
        uint8_t digest[32], sig[64];
        _cleanup_free_ uint8_t *spki = NULL, *der = NULL;
        size_t spki_size = 0, der_size = 0;

        memset(digest, fill, sizeof(digest));
        int k = keystore_sign(ks, r, digest, sig);
        if (k < 0)
                fail_msg("sign with %s: %s (%d)", r->name, keystore_last_error(ks), k);

        assert_int_equal(keystore_key_public_der(r, &spki, &spki_size), 0);
        const unsigned char *p = spki;
        EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long) spki_size);
        assert_non_null(pkey);
        assert_int_equal(ecdsa_raw_to_der(sig, 32, &der, &der_size), 0);
        assert_int_equal(ecdsa_verify_digest(pkey, digest, der, der_size), 1);
        /* ...and a different digest does not verify. */
        digest[0] ^= 1;
        assert_int_equal(ecdsa_verify_digest(pkey, digest, der, der_size), 0);
        EVP_PKEY_free(pkey);
}

static void test_wrong_tcti(void **state) {
        Fixture *f = *state;
        char err[KEYSTORE_ERROR_MAX] = "";
        Keystore *ks = NULL;

        f->opts.tcti = "swtpm:path=/nonexistent/agentid-test.sock";
        assert_int_equal(keystore_open(&f->opts, &ks, err), -ENODEV);
        assert_null(ks);
        /* The message names the TCTI so an operator knows which TPM was meant. */
        assert_non_null(strstr(err, "/nonexistent/agentid-test.sock"));

        f->opts.tcti = "nosuchtcti:foo";
        assert_int_equal(keystore_open(&f->opts, &ks, err), -ENODEV);
        assert_non_null(strstr(err, "nosuchtcti"));
}

static void test_host_key_and_id_stable(void **state) {
        Fixture *f = *state;
        char id[64];
        uint8_t kid[KEY_KID_SIZE];

        Keystore *ks = fixture_open_keystore(f);
        assert_int_equal(strlen(keystore_host_id(ks)), 32);
        strcpy(id, keystore_host_id(ks));
        memcpy(kid, keystore_host_key(ks)->kid, KEY_KID_SIZE);
        assert_string_equal(keystore_tpm_manufacturer(ks), "IBM");
        sign_and_verify(ks, keystore_host_key(ks), 0x11);
        keystore_free(ks);

        ks = fixture_open_keystore(f);
        assert_string_equal(keystore_host_id(ks), id);
        assert_memory_equal(keystore_host_key(ks)->kid, kid, KEY_KID_SIZE);

        /* host-id = hex(SHA-256(SRK Name)[:16]) (DESIGN §2). */
        uint8_t d[32];
        char hex[33];
        assert_int_equal(sha256(keystore_srk_name(ks), KEY_KID_SIZE, d), 0);
        for (int i = 0; i < 16; i++)
                sprintf(hex + 2 * i, "%02x", d[i]);
        assert_string_equal(hex, id);

        /* The host key is not an agent key: it cannot be destroyed through the keystore. */
        KeyRecord *copy = NULL;
        assert_int_equal(key_record_copy(keystore_host_key(ks), &copy), 0);
        assert_int_equal(keystore_destroy_key(ks, copy, 1), -EPERM);
        key_record_free(copy);
        keystore_free(ks);
}

static void test_create_sign_verify(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *r = create_ok(ks, "agent-1", 1000);

        assert_int_equal(r->state, KEY_STATE_ACTIVE);
        assert_memory_equal(r->parent, keystore_srk_name(ks), KEY_KID_SIZE);
        sign_and_verify(ks, r, 0x42);
        sign_and_verify(ks, r, 0x43);

        /* The record on disk equals what create returned, and it signs after a restart. */
        keystore_free(ks);
        ks = fixture_open_keystore(f);
        KeyRecord *loaded = NULL;
        assert_int_equal(keystore_load_record(ks, "agent-1", &loaded), 0);
        assert_string_equal(loaded->owner, "team-a@example.com");
        assert_int_equal(loaded->uid, 1000);
        assert_memory_equal(loaded->kid, r->kid, KEY_KID_SIZE);
        assert_memory_equal(loaded->auth, r->auth, KEY_AUTH_SIZE);
        assert_int_equal(keystore_key_check(ks, loaded), 0);
        sign_and_verify(ks, loaded, 0x44);

        key_record_free(loaded);
        key_record_free(r);
        keystore_free(ks);
}

static void test_public_area_and_name(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *r = create_ok(ks, "agent-attrs", 1000);
        _cleanup_free_ uint8_t *area = NULL;
        size_t area_size = 0;

        assert_int_equal(keystore_key_public_area(r, &area, &area_size), 0);
        keystore_free(ks); /* frees the TPM's slots for the independent check below */

        TPMT_PUBLIC pub = {};
        size_t off = 0;
        assert_int_equal(Tss2_MU_TPMT_PUBLIC_Unmarshal(area, area_size, &off, &pub), TSS2_RC_SUCCESS);
        assert_int_equal(off, area_size);

        /* Exactly fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA | sign. */
        assert_int_equal(pub.objectAttributes, 0x00040472);
        assert_int_equal(pub.objectAttributes & TPMA_OBJECT_RESTRICTED, 0);
        assert_int_equal(pub.objectAttributes & TPMA_OBJECT_DECRYPT, 0);
        assert_int_equal(pub.type, TPM2_ALG_ECC);
        assert_int_equal(pub.nameAlg, TPM2_ALG_SHA256);
        assert_int_equal(pub.parameters.eccDetail.curveID, TPM2_ECC_NIST_P256);
        assert_int_equal(pub.parameters.eccDetail.scheme.scheme, TPM2_ALG_ECDSA);
        assert_int_equal(pub.parameters.eccDetail.scheme.details.ecdsa.hashAlg, TPM2_ALG_SHA256);
        assert_int_equal(pub.authPolicy.size, 0);

        /* Name = 000b || SHA-256(TPMT_PUBLIC), computed here with OpenSSL... */
        uint8_t expected[KEY_KID_SIZE] = { 0x00, 0x0b };
        assert_int_equal(sha256(area, area_size, expected + 2), 0);
        assert_memory_equal(r->kid, expected, KEY_KID_SIZE);

        /* ...and by the TPM itself (public-only LoadExternal returns the TPM-computed Name). */
        TSS2_TCTI_CONTEXT *tcti = NULL;
        ESYS_CONTEXT *esys = NULL;
        ESYS_TR h = ESYS_TR_NONE;
        TPM2B_NAME *name = NULL;
        TPM2B_PUBLIC in = { .publicArea = pub };
        assert_int_equal(Tss2_TctiLdr_Initialize(f->sim->tcti, &tcti), TSS2_RC_SUCCESS);
        assert_int_equal(Esys_Initialize(&esys, tcti, NULL), TSS2_RC_SUCCESS);
        assert_int_equal(Esys_LoadExternal(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, &in,
                                           ESYS_TR_RH_NULL, &h),
                         TSS2_RC_SUCCESS);
        assert_int_equal(Esys_TR_GetName(esys, h, &name), TSS2_RC_SUCCESS);
        assert_int_equal(name->size, KEY_KID_SIZE);
        assert_memory_equal(name->name, expected, KEY_KID_SIZE);
        Esys_Free(name);
        Esys_FlushContext(esys, h);
        Esys_Finalize(&esys);
        Tss2_TctiLdr_Finalize(&tcti);
        key_record_free(r);
}

static void test_bad_specs(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *r = NULL;
        char long_name[70];
        const char *bad_names[] = { "", "Agent", "-x", ".x", "../x", "a/b", "a b", "ä", long_name };

        memset(long_name, 'a', 65);
        long_name[65] = 0;
        for (size_t i = 0; i < ELEMENTSOF(bad_names); i++) {
                KeySpec spec = { .name = bad_names[i], .owner = "o", .uid = 1 };
                assert_int_equal(keystore_create_key(ks, &spec, 100, &r), -EINVAL);
        }
        /* 64 characters is the longest valid name. */
        long_name[64] = 0;
        KeyRecord *ok = create_ok(ks, long_name, 1);
        key_record_free(ok);

        KeySpec empty_owner = { .name = "x", .owner = "", .uid = 1 };
        assert_int_equal(keystore_create_key(ks, &empty_owner, 100, &r), -EINVAL);
        KeySpec ctl_owner = { .name = "x", .owner = "a\nb", .uid = 1 };
        assert_int_equal(keystore_create_key(ks, &ctl_owner, 100, &r), -EINVAL);
        KeySpec past = { .name = "x", .owner = "o", .uid = 1, .not_after = 50 };
        assert_int_equal(keystore_create_key(ks, &past, 100, &r), -EINVAL);

        KeyRecord *a = create_ok(ks, "dup", 1);
        KeySpec dup = { .name = "dup", .owner = "o", .uid = 2 };
        assert_int_equal(keystore_create_key(ks, &dup, (uint64_t) time(NULL), &r), -EEXIST);
        key_record_free(a);

        /* Nothing was written for the refused specs. */
        KeyRecord **all = NULL;
        size_t n = 0;
        assert_int_equal(keystore_load_all(ks, NULL, NULL, &all, &n), 0);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < n; i++)
                key_record_free(all[i]);
        free(all);
        keystore_free(ks);
}

static void test_twenty_keys_in_turn(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *keys[20];

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                char name[16];
                snprintf(name, sizeof(name), "agent-%zu", i);
                keys[i] = create_ok(ks, name, (uint32_t) (1000 + i));
        }
        /* Three rounds over twenty keys: far more keys than the TPM's three slots. */
        for (unsigned round = 0; round < 3; round++)
                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        sign_and_verify(ks, keys[i], (uint8_t) (round * 20 + i));
        /* Interleave with the host key too. */
        sign_and_verify(ks, keystore_host_key(ks), 0x99);
        sign_and_verify(ks, keys[0], 0x98);

        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                key_record_free(keys[i]);
        keystore_free(ks);
}

/* Rewrite a record file with one field changed by the caller. */
static void tamper_record(Fixture *f, const char *name, void (*change)(KeyRecord *r)) {
        char dir[128];
        uint8_t *buf = NULL, *out = NULL;
        size_t size = 0, out_size = 0;
        KeyRecord *r = NULL;

        snprintf(dir, sizeof(dir), "%s/keys", f->state_dir);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        assert_int_equal(read_file_at(dfd, name, 65536, &buf, &size), 0);
        assert_int_equal(key_record_from_cbor(buf, size, &r, NULL), 0);
        change(r);
        assert_int_equal(key_record_to_cbor(r, &out, &out_size), 0);
        assert_int_equal(write_file_atomic_at(dfd, name, out, out_size, 0600, 0), 0);
        close(dfd);
        key_record_free(r);
        free(buf);
        free(out);
}

static void flip_auth(KeyRecord *r) {
        r->auth[0] ^= 0x5a;
}

static void test_wrong_auth_refused(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *a = create_ok(ks, "victim", 1000);
        KeyRecord *b = create_ok(ks, "bystander", 1001);
        keystore_free(ks);

        tamper_record(f, "victim", flip_auth);

        ks = fixture_open_keystore(f);
        KeyRecord *bad = NULL;
        uint8_t digest[32] = { 1 }, sig[64];
        assert_int_equal(keystore_load_record(ks, "victim", &bad), 0);
        /* Far more failures than swtpm's dictionary-attack threshold (3): noDA keeps the TPM usable. */
        for (int i = 0; i < 6; i++)
                assert_int_equal(keystore_sign(ks, bad, digest, sig), -EKEYREJECTED);
        sign_and_verify(ks, b, 0x10);
        /* The right authValue still works: the failures neither locked the TPM nor the key. */
        sign_and_verify(ks, a, 0x11);
        sign_and_verify(ks, keystore_host_key(ks), 0x12);

        key_record_free(bad);
        key_record_free(a);
        key_record_free(b);
        keystore_free(ks);
}

static void write_raw(const char *dir, const char *name, const void *data, size_t size);

static bool file_contains(const char *path, const uint8_t *needle, size_t n) {
        uint8_t *buf = NULL;
        size_t size = 0;
        bool found = false;

        if (read_file_at(AT_FDCWD, path, 1 << 20, &buf, &size) < 0)
                return false;
        for (size_t i = 0; n <= size && i + n <= size && !found; i++)
                found = memcmp(buf + i, needle, n) == 0;
        free(buf);
        return found;
}

static unsigned count_dir_entries(const char *path, const char *prefix) {
        DIR *d = opendir(path);
        unsigned n = 0;
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));)
                if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                        n++;
        closedir(d);
        return n;
}

static void test_destroy(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *r = create_ok(ks, "retiring", 1000);
        KeyRecord *before = NULL;
        char path[160], keys[128];
        uint8_t digest[32] = { 7 }, sig[64];

        sign_and_verify(ks, r, 0x21);
        assert_int_equal(key_record_copy(r, &before), 0);
        snprintf(keys, sizeof(keys), "%s/keys", f->state_dir);
        snprintf(path, sizeof(path), "%s/retiring", keys);
        assert_true(file_contains(path, before->priv, before->priv_size));

        assert_int_equal(keystore_destroy_key(ks, r, 12345), 0);
        assert_int_equal(r->state, KEY_STATE_DESTROYED);
        assert_null(r->priv);
        assert_int_equal(keystore_sign(ks, r, digest, sig), -EKEYREVOKED);
        assert_int_equal(keystore_destroy_key(ks, r, 12346), -EKEYREVOKED);

        /* On disk: a tombstone without blob or authValue, no leftover copies. */
        assert_false(file_contains(path, before->priv, before->priv_size));
        assert_false(file_contains(path, before->auth, KEY_AUTH_SIZE));
        assert_int_equal(count_dir_entries(keys, ".wipe-"), 0);
        assert_int_equal(count_dir_entries(keys, ".tmp-"), 0);

        KeyRecord *tomb = NULL;
        assert_int_equal(keystore_load_record(ks, "retiring", &tomb), 0);
        assert_int_equal(tomb->state, KEY_STATE_DESTROYED);
        assert_int_equal(tomb->destroyed, 12345);
        assert_memory_equal(tomb->kid, before->kid, KEY_KID_SIZE);
        assert_int_equal(keystore_key_check(ks, tomb), -EKEYREVOKED);

        /* The name stays reserved for good, across restarts too. */
        KeySpec again = { .name = "retiring", .owner = "o", .uid = 1 };
        KeyRecord *r2 = NULL;
        assert_int_equal(keystore_create_key(ks, &again, (uint64_t) time(NULL), &r2), -EEXIST);
        keystore_free(ks);
        ks = fixture_open_keystore(f);
        assert_int_equal(keystore_create_key(ks, &again, (uint64_t) time(NULL), &r2), -EEXIST);

        key_record_free(tomb);
        key_record_free(before);
        key_record_free(r);
        keystore_free(ks);
}

static void test_interrupted_destroy_finished_at_open(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *r = create_ok(ks, "half", 1000), *other = create_ok(ks, "done", 1000), *loaded = NULL;
        char keys[128], from[200], to[200];
        uint8_t *old = NULL;
        size_t old_size = 0;
        keystore_free(ks);

        /* A crash after the link but before the tombstone: the key was not destroyed, and its live
         * record must survive the clean-up (the link points at the same file). */
        snprintf(keys, sizeof(keys), "%s/keys", f->state_dir);
        snprintf(from, sizeof(from), "%s/half", keys);
        snprintf(to, sizeof(to), "%s/.wipe-half", keys);
        assert_int_equal(link(from, to), 0);
        snprintf(to, sizeof(to), "%s/.tmp-half-0123456789abcdef", keys);
        write_raw(keys, ".tmp-half-0123456789abcdef", "secret", 6);

        /* A crash after the tombstone but before the wipe: the old record (a separate file now) goes. */
        snprintf(from, sizeof(from), "%s/done", keys);
        assert_int_equal(read_file_at(AT_FDCWD, from, 65536, &old, &old_size), 0);
        write_raw(keys, ".wipe-done", old, old_size);
        KeyRecord *tomb = NULL;
        assert_int_equal(key_record_copy(other, &tomb), 0);
        key_record_make_tombstone(tomb, 99);
        uint8_t *enc = NULL;
        size_t enc_size = 0;
        assert_int_equal(key_record_to_cbor(tomb, &enc, &enc_size), 0);
        write_raw(keys, "done", enc, enc_size);

        ks = fixture_open_keystore(f);
        assert_int_equal(count_dir_entries(keys, ".wipe-"), 0);
        assert_int_equal(count_dir_entries(keys, ".tmp-"), 0);
        assert_int_equal(keystore_load_record(ks, "half", &loaded), 0);
        assert_int_equal(loaded->state, KEY_STATE_ACTIVE);
        sign_and_verify(ks, loaded, 0x33);
        key_record_free(loaded);
        assert_int_equal(keystore_load_record(ks, "done", &loaded), 0);
        assert_int_equal(loaded->state, KEY_STATE_DESTROYED);

        /* Destroying "half" for real now works and leaves no link behind. */
        KeyRecord *h = NULL;
        assert_int_equal(keystore_load_record(ks, "half", &h), 0);
        assert_int_equal(keystore_destroy_key(ks, h, 100), 0);
        assert_int_equal(count_dir_entries(keys, ".wipe-"), 0);

        key_record_free(h);
        key_record_free(loaded);
        key_record_free(tomb);
        free(enc);
        free(old);
        key_record_free(r);
        key_record_free(other);
        keystore_free(ks);
}

static void report_problem(const char *file, int error, const char *reason, void *userdata) {
        unsigned *n = userdata;
        assert_non_null(reason);
        assert_true(error < 0);
        (*n)++;
}

static void write_raw(const char *dir, const char *name, const void *data, size_t size) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, size), (ssize_t) size);
        close(fd);
}

static void drop_priv_keep_active(Fixture *f, const char *name) {
        /* Re-encode the record without "priv": an active record whose blob is missing. */
        char dir[128];
        uint8_t *buf = NULL, *out = NULL;
        size_t size = 0, out_size = 0;
        cbor_item_t *in = NULL;
        CborLimits lim = { .max_size = 65536, .max_depth = 4, .max_items = 100 };

        snprintf(dir, sizeof(dir), "%s/keys", f->state_dir);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        assert_int_equal(read_file_at(dfd, name, 65536, &buf, &size), 0);
        assert_int_equal(cbor_util_decode(buf, size, &lim, &in, NULL), 0);
        cbor_item_t *m = cbor_util_new_map();
        struct cbor_pair *pairs = cbor_map_handle(in);
        for (size_t i = 0; i < cbor_map_size(in); i++) {
                const char *k = (const char *) cbor_string_handle(pairs[i].key);
                if (cbor_string_length(pairs[i].key) == 4 && memcmp(k, "priv", 4) == 0)
                        continue;
                assert_int_equal(cbor_util_map_put(m, cbor_incref(pairs[i].key), cbor_incref(pairs[i].value)), 0);
        }
        assert_int_equal(cbor_util_encode(m, &out, &out_size), 0);
        write_raw(dir, name, out, out_size);
        cbor_decref(&m);
        cbor_decref(&in);
        close(dfd);
        free(buf);
        free(out);
}

static void test_corrupt_records_skipped(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        char keys[128];
        uint8_t junk[300];
        KeyRecord *good = create_ok(ks, "good", 1000);
        KeyRecord *torn = create_ok(ks, "torn", 1000);
        KeyRecord *noblob = create_ok(ks, "noblob", 1000);
        KeyRecord *moved = create_ok(ks, "moved", 1000);
        keystore_free(ks);

        snprintf(keys, sizeof(keys), "%s/keys", f->state_dir);
        /* Torn: only the first half of the record made it to disk. */
        write_raw(keys, "torn", torn->pub, 10);
        /* Foreign: random bytes, including the 2 GiB-allocation header libcbor would trust. */
        assert_int_equal(random_bytes(junk, sizeof(junk)), 0);
        write_raw(keys, "junk", junk, sizeof(junk));
        write_raw(keys, "bomb", "\x9a\x10\x00\x00\x00", 5);
        write_raw(keys, "empty", "", 0);
        write_raw(keys, "Not-A-Name", "x", 1);
        drop_priv_keep_active(f, "noblob");
        /* A valid record under another name. */
        char from[200], to[200];
        snprintf(from, sizeof(from), "%s/moved", keys);
        snprintf(to, sizeof(to), "%s/elsewhere", keys);
        assert_int_equal(rename(from, to), 0);

        ks = fixture_open_keystore(f);
        KeyRecord **all = NULL;
        size_t n = 0;
        unsigned problems = 0;
        assert_int_equal(keystore_load_all(ks, report_problem, &problems, &all, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(all[0]->name, "good");
        assert_int_equal(problems, 7);
        sign_and_verify(ks, all[0], 0x31);

        KeyRecord *x = NULL;
        assert_int_equal(keystore_load_record(ks, "noblob", &x), -EBADMSG);
        assert_non_null(strstr(keystore_last_error(ks), "noblob"));
        assert_int_equal(keystore_load_record(ks, "missing", &x), -ENOENT);

        key_record_free(all[0]);
        free(all);
        key_record_free(good);
        key_record_free(torn);
        key_record_free(noblob);
        key_record_free(moved);
        keystore_free(ks);
}

static void other_parent(KeyRecord *r) {
        r->parent[5] ^= 1;
}

static void test_foreign_parent_reported(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *r = create_ok(ks, "migrant", 1000);
        KeyRecord *ok = create_ok(ks, "local", 1000);
        uint8_t digest[32] = { 3 }, sig[64];
        keystore_free(ks);

        tamper_record(f, "migrant", other_parent);
        ks = fixture_open_keystore(f);
        KeyRecord *m = NULL;
        assert_int_equal(keystore_load_record(ks, "migrant", &m), 0);
        assert_int_equal(keystore_key_check(ks, m), -EMEDIUMTYPE);
        assert_int_equal(keystore_sign(ks, m, digest, sig), -EMEDIUMTYPE);
        sign_and_verify(ks, ok, 0x41);

        key_record_free(m);
        key_record_free(r);
        key_record_free(ok);
        keystore_free(ks);
}

static void test_reboot(void **state, bool orderly) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *k[4];

        for (size_t i = 0; i < ELEMENTSOF(k); i++) {
                char name[16];
                snprintf(name, sizeof(name), "boot-%zu", i);
                k[i] = create_ok(ks, name, 1000);
                sign_and_verify(ks, k[i], (uint8_t) i);
        }
        /* Now two keys are loaded and two context-saved; a reset invalidates all of them. */
        assert_int_equal(tpm_sim_reboot(f->sim, orderly), 0);
        for (size_t i = 0; i < ELEMENTSOF(k); i++)
                sign_and_verify(ks, k[i], (uint8_t) (0x50 + i));
        sign_and_verify(ks, keystore_host_key(ks), 0x60);

        for (size_t i = 0; i < ELEMENTSOF(k); i++)
                key_record_free(k[i]);
        keystore_free(ks);
}

static void test_reboot_orderly(void **state) {
        test_reboot(state, true);
}

static void test_reboot_unclean(void **state) {
        test_reboot(state, false);
}

static void test_tpm_killed_and_back(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *r = create_ok(ks, "survivor", 1000);
        uint8_t digest[32] = { 9 }, sig[64];

        sign_and_verify(ks, r, 0x70);
        assert_int_equal(tpm_sim_kill(f->sim), 0);
        assert_int_equal(keystore_sign(ks, r, digest, sig), -ENODEV);
        assert_non_null(strstr(keystore_last_error(ks), "Signing"));
        assert_int_equal(keystore_sign(ks, r, digest, sig), -ENODEV);

        /* swtpm back on the same state: a TPM reset from the keystore's point of view. */
        assert_int_equal(tpm_sim_restart(f->sim), 0);
        sign_and_verify(ks, r, 0x71);
        sign_and_verify(ks, keystore_host_key(ks), 0x72);

        key_record_free(r);
        keystore_free(ks);
}

static void test_flush_stale_handles(void **state) {
        Fixture *f = *state;
        char err[KEYSTORE_ERROR_MAX] = "", ctx[160];
        Keystore *ks = NULL;

        /* tpm2-tools leave one transient object per run on a TPM without resource manager. */
        snprintf(ctx, sizeof(ctx), "%s/leak.ctx", f->sim->dir);
        for (int i = 0; i < 3; i++) {
                const char *argv[] = { "tpm2_createprimary", "-Q", "-C", "o", "-c", ctx, NULL };
                assert_int_equal(tpm_sim_run_tool(f->sim, argv), 0);
        }
        assert_int_equal(keystore_open(&f->opts, &ks, err), -ENOBUFS);

        f->opts.flush_stale_handles = true;
        ks = fixture_open_keystore(f);
        sign_and_verify(ks, keystore_host_key(ks), 0x80);
        keystore_free(ks);
}

static void test_state_dir_guarded(void **state) {
        Fixture *f = *state;
        char err[KEYSTORE_ERROR_MAX] = "";
        Keystore *ks = fixture_open_keystore(f), *second = NULL;

        /* One process per state directory. */
        assert_int_equal(keystore_open(&f->opts, &second, err), -EBUSY);
        assert_non_null(strstr(err, "in use"));
        keystore_free(ks);

        /* A directory others can write to could have records planted in it. */
        assert_int_equal(chmod(f->state_dir, 0777), 0);
        assert_int_equal(keystore_open(&f->opts, &second, err), -EPERM);
        assert_int_equal(chmod(f->state_dir, 0700), 0);

        char keys[128];
        snprintf(keys, sizeof(keys), "%s/keys", f->state_dir);
        assert_int_equal(chmod(keys, 0770), 0);
        assert_int_equal(keystore_open(&f->opts, &second, err), -EPERM);
        assert_int_equal(chmod(keys, 0700), 0);

        /* Records are private to the daemon. */
        struct stat st;
        char host[160];
        snprintf(host, sizeof(host), "%s/host-key", f->state_dir);
        assert_int_equal(stat(host, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);

        ks = fixture_open_keystore(f);
        keystore_free(ks);
}

static void test_hierarchy_auth(void **state) {
        Fixture *f = *state;
        char err[KEYSTORE_ERROR_MAX] = "", file[160];
        Keystore *ks = NULL;

        /* Give the owner hierarchy a password, as real hosts often do. */
        const char *argv[] = { "tpm2_changeauth", "-c", "o", "s3cret", NULL };
        assert_int_equal(tpm_sim_run_tool(f->sim, argv), 0);

        /* Without it the SRK cannot be derived. */
        assert_true(keystore_open(&f->opts, &ks, err) < 0);
        assert_non_null(strstr(err, "storage root key"));

        snprintf(file, sizeof(file), "%s/owner-auth", f->sim->dir);
        write_raw(f->sim->dir, "owner-auth", "s3cret\n", 7);
        f->opts.owner_auth_file = file;
        ks = fixture_open_keystore(f);
        KeyRecord *r = create_ok(ks, "with-owner-auth", 1000);
        sign_and_verify(ks, r, 0x90);
        key_record_free(r);
        keystore_free(ks);

        f->opts.owner_auth_file = "/nonexistent/owner-auth";
        assert_int_equal(keystore_open(&f->opts, &ks, err), -ENOENT);
        assert_non_null(strstr(err, "/nonexistent/owner-auth"));
}

static void test_persistent_srk(void **state) {
        Fixture *f = *state;
        char id_derived[64], ctx[160], state_b[160], state_c[160];

        Keystore *ks = fixture_open_keystore(f);
        strcpy(id_derived, keystore_host_id(ks));
        keystore_free(ks);

        /* Something that is not an SRK at 0x81000001 (an RSA key) is ignored. */
        snprintf(ctx, sizeof(ctx), "%s/p.ctx", f->sim->dir);
        const char *rsa[] = { "tpm2_createprimary", "-Q", "-C", "o", "-G", "rsa2048", "-c", ctx, NULL };
        const char *persist[] = { "tpm2_evictcontrol", "-Q", "-C", "o", "-c", ctx, "0x81000001", NULL };
        const char *flush[] = { "tpm2_flushcontext", "-t", NULL };
        assert_int_equal(tpm_sim_run_tool(f->sim, rsa), 0);
        assert_int_equal(tpm_sim_run_tool(f->sim, persist), 0);
        assert_int_equal(tpm_sim_run_tool(f->sim, flush), 0);
        snprintf(state_b, sizeof(state_b), "%s/state-b", f->sim->dir);
        f->opts.state_dir = state_b;
        ks = fixture_open_keystore(f);
        assert_string_equal(keystore_host_id(ks), id_derived);
        keystore_free(ks);

        /* An ECC SRK there (this one without noDA, so its Name differs from ours) is used. */
        const char *evict[] = { "tpm2_evictcontrol", "-Q", "-C", "o", "-c", "0x81000001", NULL };
        const char *ecc[] = { "tpm2_createprimary", "-Q", "-C", "o", "-G", "ecc256:aes128cfb", "-a",
                              "restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth",
                              "-c", ctx, NULL };
        assert_int_equal(tpm_sim_run_tool(f->sim, evict), 0);
        assert_int_equal(tpm_sim_run_tool(f->sim, ecc), 0);
        assert_int_equal(tpm_sim_run_tool(f->sim, persist), 0);
        assert_int_equal(tpm_sim_run_tool(f->sim, flush), 0);
        snprintf(state_c, sizeof(state_c), "%s/state-c", f->sim->dir);
        f->opts.state_dir = state_c;
        ks = fixture_open_keystore(f);
        assert_string_not_equal(keystore_host_id(ks), id_derived);
        KeyRecord *r = create_ok(ks, "under-persistent", 1000);
        sign_and_verify(ks, r, 0xa0);
        assert_memory_equal(r->parent, keystore_srk_name(ks), KEY_KID_SIZE);
        key_record_free(r);
        keystore_free(ks);
}

static void check_attestation(Keystore *ks, const KeyRecord *r) {
        KeystoreEvidence e = {};
        uint8_t cdata[32], qdata[32], digest[32];
        TPMS_ATTEST certify = {}, quote = {};
        TPMT_PUBLIC ak = {};
        size_t off = 0;

        memset(cdata, 0xc1, sizeof(cdata));
        memset(qdata, 0xd2, sizeof(qdata));
        if (keystore_attest(ks, r, cdata, qdata, &e) < 0)
                fail_msg("attest: %s", keystore_last_error(ks));

        /* The AK: restricted ECDSA-SHA256 signing key that can never leave the TPM (tpm-notes §2.1). */
        assert_int_equal(Tss2_MU_TPMT_PUBLIC_Unmarshal(e.ak_pub, e.ak_pub_size, &off, &ak), TSS2_RC_SUCCESS);
        assert_int_equal(off, e.ak_pub_size);
        assert_int_equal(ak.objectAttributes, 0x00050472);
        assert_int_equal(ak.parameters.eccDetail.scheme.scheme, TPM2_ALG_ECDSA);

        off = 0;
        assert_int_equal(Tss2_MU_TPMS_ATTEST_Unmarshal(e.certify, e.certify_size, &off, &certify), TSS2_RC_SUCCESS);
        assert_int_equal(off, e.certify_size);
        assert_int_equal(certify.magic, TPM2_GENERATED_VALUE);
        assert_int_equal(certify.type, TPM2_ST_ATTEST_CERTIFY);
        assert_int_equal(certify.extraData.size, 32);
        assert_memory_equal(certify.extraData.buffer, cdata, 32);
        assert_int_equal(certify.attested.certify.name.size, KEY_KID_SIZE);
        assert_memory_equal(certify.attested.certify.name.name, r->kid, KEY_KID_SIZE);

        /* qualifiedName = 000b || H(QN(SRK) || Name(K)), QN(SRK) = 000b || H(40000001 || Name(SRK)). */
        uint8_t qn_srk[34] = { 0x00, 0x0b }, qn_k[34] = { 0x00, 0x0b }, buf[68];
        memcpy(buf, "\x40\x00\x00\x01", 4);
        memcpy(buf + 4, e.srk_name, 34);
        assert_int_equal(sha256(buf, 38, qn_srk + 2), 0);
        memcpy(buf, qn_srk, 34);
        memcpy(buf + 34, r->kid, 34);
        assert_int_equal(sha256(buf, 68, qn_k + 2), 0);
        assert_memory_equal(certify.attested.certify.qualifiedName.name, qn_k, 34);

        off = 0;
        assert_int_equal(Tss2_MU_TPMS_ATTEST_Unmarshal(e.quote, e.quote_size, &off, &quote), TSS2_RC_SUCCESS);
        assert_int_equal(off, e.quote_size);
        assert_int_equal(quote.type, TPM2_ST_ATTEST_QUOTE);
        assert_memory_equal(quote.extraData.buffer, qdata, 32);
        assert_int_equal(quote.attested.quote.pcrSelect.count, 1);
        assert_int_equal(quote.attested.quote.pcrSelect.pcrSelections[0].pcrSelect[0], 0xff);
        assert_int_equal(sha256(e.pcrs, sizeof(e.pcrs), digest), 0);
        assert_memory_equal(quote.attested.quote.pcrDigest.buffer, digest, 32);
        /* Same signer, same boot; under the EK the counters are not obfuscated (tpm-notes §3.5). */
        assert_memory_equal(&certify.qualifiedSigner, &quote.qualifiedSigner, sizeof(TPM2B_NAME));
        assert_int_equal(certify.clockInfo.resetCount, quote.clockInfo.resetCount);
        assert_true(quote.clockInfo.resetCount < 1000);

        verify_tpm_signature(e.ak_pub, e.ak_pub_size, e.certify, e.certify_size, e.certify_sig, e.certify_sig_size);
        verify_tpm_signature(e.ak_pub, e.ak_pub_size, e.quote, e.quote_size, e.quote_sig, e.quote_sig_size);
        keystore_evidence_done(&e);
}

static void test_attest(void **state, KeystoreEkType ek) {
        Fixture *f = *state;
        f->opts.ek = ek;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *a = create_ok(ks, "attested", 1000), *b = create_ok(ks, "other", 1000);

        /* Two keys cached when the attestation starts: the slot plan must still fit. */
        sign_and_verify(ks, a, 1);
        sign_and_verify(ks, b, 2);
        check_attestation(ks, a);
        sign_and_verify(ks, b, 3);
        check_attestation(ks, b);

        /* The AK survives a restart (blob on disk) and a TPM reset (saved context dropped). */
        uint8_t *ak1 = NULL, *ak2 = NULL, name[KEY_KID_SIZE];
        size_t n1 = 0, n2 = 0;
        assert_int_equal(keystore_ak_public(ks, &ak1, &n1, name), 0);
        keystore_free(ks);
        ks = fixture_open_keystore(f);
        assert_int_equal(keystore_ak_public(ks, &ak2, &n2, name), 0);
        assert_int_equal(n1, n2);
        assert_memory_equal(ak1, ak2, n1);
        assert_int_equal(tpm_sim_reboot(f->sim, true), 0);
        check_attestation(ks, a);

        free(ak1);
        free(ak2);
        key_record_free(a);
        key_record_free(b);
        keystore_free(ks);
}

static void test_attest_needs_endorsement_auth(void **state) {
        Fixture *f = *state;
        char file[160];
        KeystoreEvidence e = {};
        uint8_t data[32] = {};

        /* The endorsement hierarchy has a password the keystore was not given: the RSA EK's policy
         * (PolicySecret on that hierarchy) cannot be satisfied, so there is no AK... */
        const char *argv[] = { "tpm2_changeauth", "-c", "e", "endorse", NULL };
        assert_int_equal(tpm_sim_run_tool(f->sim, argv), 0);
        Keystore *ks = fixture_open_keystore(f);
        assert_non_null(keystore_attestation_error(ks));
        KeyRecord *r = create_ok(ks, "still-signs", 1000);
        sign_and_verify(ks, r, 1);
        assert_int_equal(keystore_attest(ks, r, data, data, &e), -EOPNOTSUPP);
        assert_non_null(strstr(keystore_last_error(ks), "attestation key"));
        keystore_free(ks);

        /* ...until it is given. */
        write_raw(f->sim->dir, "endorsement-auth", "endorse\n", 8);
        snprintf(file, sizeof(file), "%s/endorsement-auth", f->sim->dir);
        f->opts.endorsement_auth_file = file;
        ks = fixture_open_keystore(f);
        assert_null(keystore_attestation_error(ks));
        check_attestation(ks, r);
        key_record_free(r);
        keystore_free(ks);
}

static void test_attest_rsa_ek(void **state) {
        test_attest(state, KEYSTORE_EK_RSA);
}

static void test_attest_ecc_ek(void **state) {
        test_attest(state, KEYSTORE_EK_ECC);
}

static void test_create_after_reset(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *a = create_ok(ks, "before-a", 1000), *b = create_ok(ks, "before-b", 1000);

        sign_and_verify(ks, a, 1);
        sign_and_verify(ks, b, 2);
        /* The cached handles are stale now; creating must not trip over them. */
        assert_int_equal(tpm_sim_reboot(f->sim, false), 0);
        KeyRecord *c = create_ok(ks, "after", 1000);
        sign_and_verify(ks, c, 3);
        sign_and_verify(ks, a, 4);
        key_record_free(a);
        key_record_free(b);
        key_record_free(c);
        keystore_free(ks);
}

static void test_owner_hierarchy_cleared(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        KeyRecord *old = create_ok(ks, "old-agent", 1000), *loaded = NULL;
        char old_id[64], keys[128];
        uint8_t digest[32] = { 5 }, sig[64];

        strcpy(old_id, keystore_host_id(ks));
        keystore_free(ks);

        const char *clear[] = { "tpm2_clear", "-c", "p", NULL };
        assert_int_equal(tpm_sim_run_tool(f->sim, clear), 0);

        /* The daemon keeps working: a new host key, the old one kept aside, old keys reported. */
        ks = fixture_open_keystore(f);
        assert_true(keystore_host_key_replaced(ks));
        assert_string_not_equal(keystore_host_id(ks), old_id);
        snprintf(keys, sizeof(keys), "%s", f->state_dir);
        assert_int_equal(count_dir_entries(keys, "host-key.retired-"), 1);
        assert_int_equal(keystore_load_record(ks, "old-agent", &loaded), 0);
        assert_int_equal(keystore_key_check(ks, loaded), -EMEDIUMTYPE);
        assert_int_equal(keystore_sign(ks, loaded, digest, sig), -EMEDIUMTYPE);
        KeyRecord *fresh = create_ok(ks, "new-agent", 1000);
        sign_and_verify(ks, fresh, 6);
        sign_and_verify(ks, keystore_host_key(ks), 7);
        keystore_free(ks);

        /* Only once: the next start finds a usable host key, and the AKs' check markers are gone
         * (the other type's stays until a start with that EK type checks its AK). */
        ks = fixture_open_keystore(f);
        assert_false(keystore_host_key_replaced(ks));
        assert_int_equal(count_dir_entries(f->state_dir, "ak-rsa.check"), 0);
        assert_int_equal(count_dir_entries(f->state_dir, "ak-ecc.check"), 1);
        key_record_free(fresh);
        key_record_free(loaded);
        key_record_free(old);
        keystore_free(ks);
}

/*
 * agentidd stopped after it found the owner hierarchy cleared and retired the host key, but before it
 * looked at the AK: the next start finds a usable (new) host key, and only the marker written first
 * tells it the AK was made under the old hierarchy. It must still check it, retire it and make a new
 * one, or attestation stays broken.
 */
static void test_owner_cleared_ak_check_survives_a_stop(void **state) {
        Fixture *f = *state;
        Keystore *ks = fixture_open_keystore(f);
        uint8_t *ak = NULL, *ak_new = NULL, name[KEY_KID_SIZE], name_new[KEY_KID_SIZE];
        size_t ak_size = 0, ak_new_size = 0;
        char from[200], to[200];

        assert_null(keystore_attestation_error(ks));
        assert_int_equal(keystore_ak_public(ks, &ak, &ak_size, name), 0);
        keystore_free(ks);

        const char *clear[] = { "tpm2_clear", "-c", "p", NULL };
        assert_int_equal(tpm_sim_run_tool(f->sim, clear), 0);
        /* What that start did before it stopped, in its order: the markers, then the host key aside. */
        write_raw(f->state_dir, "ak-rsa.check", "", 0);
        write_raw(f->state_dir, "ak-ecc.check", "", 0);
        snprintf(from, sizeof(from), "%s/host-key", f->state_dir);
        snprintf(to, sizeof(to), "%s/host-key.retired-1", f->state_dir);
        assert_int_equal(rename(from, to), 0);

        ks = fixture_open_keystore(f);
        assert_false(keystore_host_key_replaced(ks)); /* no host key at all: nothing to compare with */
        assert_null(keystore_attestation_error(ks));
        assert_int_equal(keystore_ak_public(ks, &ak_new, &ak_new_size, name_new), 0);
        assert_memory_not_equal(name, name_new, KEY_KID_SIZE);
        assert_int_equal(count_dir_entries(f->state_dir, "ak-rsa.retired-"), 1);
        assert_int_equal(count_dir_entries(f->state_dir, "ak-rsa.check"), 0);
        KeyRecord *r = create_ok(ks, "after-clear", 1000);
        check_attestation(ks, r);
        key_record_free(r);
        free(ak);
        free(ak_new);
        keystore_free(ks);
}

static void test_enroll_tpm_side(void **state, KeystoreEkType ek) {
        Fixture *f = *state;
        f->opts.ek = ek;
        Keystore *ks = fixture_open_keystore(f);
        uint8_t *cert = NULL, *ek_area = NULL, *ak = NULL, *out = NULL, name[KEY_KID_SIZE];
        size_t cert_size = 0, ek_size = 0, ak_size = 0, out_size = 0;
        char path[200], hexname[2 * KEY_KID_SIZE + 1];

        /* The EK certificate swtpm_setup stored in NV (chunked reads). */
        assert_int_equal(keystore_ek_certificate(ks, ek, &cert, &cert_size), 0);
        const unsigned char *p = cert;
        X509 *x = d2i_X509(NULL, &p, (long) cert_size);
        assert_non_null(x);
        assert_int_equal(p - cert, (long) cert_size);
        X509_free(x);

        /* MakeCredential by tpm2-tools in software, for our AK's Name and our EK's public area. */
        assert_int_equal(keystore_ek_public(ks, ek, &ek_area, &ek_size), 0);
        assert_int_equal(keystore_ak_public(ks, &ak, &ak_size, name), 0);
        uint8_t tpm2b[2048];
        tpm2b[0] = (uint8_t) (ek_size >> 8);
        tpm2b[1] = (uint8_t) ek_size;
        memcpy(tpm2b + 2, ek_area, ek_size);
        write_raw(f->sim->dir, "ek.pub", tpm2b, ek_size + 2);
        write_raw(f->sim->dir, "secret", "0123456789abcdef0123456789abcdef", 32);
        for (size_t i = 0; i < KEY_KID_SIZE; i++)
                sprintf(hexname + 2 * i, "%02x", name[i]);
        char ekpub[160], sec[160], cred[160];
        snprintf(ekpub, sizeof(ekpub), "%s/ek.pub", f->sim->dir);
        snprintf(sec, sizeof(sec), "%s/secret", f->sim->dir);
        snprintf(cred, sizeof(cred), "%s/cred", f->sim->dir);
        const char *make[] = { "tpm2_makecredential", "-T", "none", "-u", ekpub, "-s", sec, "-n", hexname, "-o", cred,
                               NULL };
        assert_int_equal(tpm_sim_run_tool(f->sim, make), 0);

        /* tpm2-tools' file: magic, version, then the two TPM2Bs as the TPM takes them. */
        uint8_t *file = NULL;
        size_t file_size = 0, off = 8;
        TPM2B_ID_OBJECT id = {};
        assert_int_equal(read_file_at(AT_FDCWD, cred, 65536, &file, &file_size), 0);
        assert_int_equal(Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(file, file_size, &off, &id), TSS2_RC_SUCCESS);
        size_t blob_end = off;

        assert_int_equal(keystore_activate_credential(ks, file + 8, blob_end - 8, file + blob_end, file_size - blob_end,
                                                      &out, &out_size),
                         0);
        assert_int_equal(out_size, 32);
        assert_memory_equal(out, "0123456789abcdef0123456789abcdef", 32);
        free(out);

        /* A credential made for another object's Name does not activate. */
        file[8 + 4] ^= 1;
        assert_true(keystore_activate_credential(ks, file + 8, blob_end - 8, file + blob_end, file_size - blob_end,
                                                 &out, &out_size) < 0);
        assert_int_equal(keystore_activate_credential(ks, file + 8, 3, file + blob_end, 2, &out, &out_size), -EINVAL);
        /* ...and the keystore still works afterwards. */
        KeyRecord *r = create_ok(ks, "after-activation", 1000);
        sign_and_verify(ks, r, 9);
        check_attestation(ks, r);

        snprintf(path, sizeof(path), "%s", f->sim->dir);
        key_record_free(r);
        free(file);
        free(cert);
        free(ek_area);
        free(ak);
        keystore_free(ks);
}

static void test_enroll_rsa_ek(void **state) {
        test_enroll_tpm_side(state, KEYSTORE_EK_RSA);
}

static void test_enroll_ecc_ek(void **state) {
        test_enroll_tpm_side(state, KEYSTORE_EK_ECC);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_wrong_tcti, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_host_key_and_id_stable, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_create_sign_verify, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_public_area_and_name, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_bad_specs, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_twenty_keys_in_turn, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_wrong_auth_refused, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_destroy, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_interrupted_destroy_finished_at_open, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_corrupt_records_skipped, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_foreign_parent_reported, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reboot_orderly, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reboot_unclean, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_tpm_killed_and_back, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_flush_stale_handles, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_state_dir_guarded, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_hierarchy_auth, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_persistent_srk, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_create_after_reset, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_owner_hierarchy_cleared, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_owner_cleared_ak_check_survives_a_stop, fixture_setup,
                                                fixture_teardown),
                cmocka_unit_test_setup_teardown(test_attest_rsa_ek, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_attest_ecc_ek, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_attest_needs_endorsement_auth, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_enroll_rsa_ek, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_enroll_ecc_ek, fixture_setup, fixture_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
