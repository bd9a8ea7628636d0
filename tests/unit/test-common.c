/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * common/: atomic files, bounded reads, the hash table, hex, ECDSA signature conversions, the P-256
 * SubjectPublicKeyInfo encoder (suite "unit").
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/evp.h>

#include "common/crypto-util.h"
#include "common/fileio.h"
#include "common/hashmap.h"
#include "common/hexutil.h"

static int dir_fd = -1;
static char dir[] = "/tmp/agentid-test-common-XXXXXX";

static int setup(void **state) {
        assert_non_null(mkdtemp(dir));
        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return dir_fd < 0;
}

static int teardown(void **state) {
        char cmd[128];
        close(dir_fd);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        return system(cmd);
}

static unsigned count_entries(void) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "ls -A %s | wc -l", dir);
        FILE *f = popen(cmd, "r");
        unsigned n = 0;
        assert_int_equal(fscanf(f, "%u", &n), 1);
        pclose(f);
        return n;
}

static void test_atomic_write(void **state) {
        uint8_t *buf = NULL;
        size_t size = 0;
        struct stat st;

        assert_int_equal(write_file_atomic_at(dir_fd, "f", "one", 3, 0600, 0), 0);
        assert_int_equal(write_file_atomic_at(dir_fd, "f", "two!", 4, 0640, 0), 0);
        assert_int_equal(read_file_at(dir_fd, "f", 100, &buf, &size), 0);
        assert_int_equal(size, 4);
        assert_memory_equal(buf, "two!", 4);
        free(buf);
        assert_int_equal(fstatat(dir_fd, "f", &st, 0), 0);
        assert_int_equal(st.st_mode & 0777, 0640);

        /* No-replace refuses an existing target and leaves no temporary file behind. */
        assert_int_equal(write_file_atomic_at(dir_fd, "f", "x", 1, 0600, WRITE_FILE_NOREPLACE), -EEXIST);
        assert_int_equal(count_entries(), 1);
        assert_int_equal(write_file_atomic_at(dir_fd, "a/b", "x", 1, 0600, 0), -EINVAL);

        /* By path, with and without a directory part (a bare name is relative to the cwd). */
        char path[128], cwd[4096];
        snprintf(path, sizeof(path), "%s/by-path", dir);
        assert_int_equal(write_file_atomic(path, "p", 1, 0600, 0), 0);
        assert_non_null(getcwd(cwd, sizeof(cwd)));
        assert_int_equal(chdir(dir), 0);
        assert_int_equal(write_file_atomic("bare", "b", 1, 0600, 0), 0);
        assert_int_equal(chdir(cwd), 0);
        assert_int_equal(faccessat(dir_fd, "bare", F_OK, 0), 0);
        assert_int_equal(unlinkat(dir_fd, "bare", 0), 0);
        assert_int_equal(unlinkat(dir_fd, "by-path", 0), 0);
        assert_int_equal(write_file_atomic_at(dir_fd, "", "x", 1, 0600, 0), -EINVAL);
}

static void test_read_limits(void **state) {
        uint8_t *buf = NULL;
        size_t size = 0;

        assert_int_equal(write_file_atomic_at(dir_fd, "big", "0123456789", 10, 0600, 0), 0);
        assert_int_equal(read_file_at(dir_fd, "big", 9, &buf, &size), -EFBIG);
        assert_int_equal(read_file_at(dir_fd, "big", 10, &buf, &size), 0);
        free(buf);
        assert_int_equal(read_file_at(dir_fd, "missing", 10, &buf, &size), -ENOENT);
        assert_int_equal(read_file_at(AT_FDCWD, "/tmp", 10, &buf, &size), -EINVAL);

        /* /proc files report size 0 but have content. */
        assert_int_equal(read_file_at(AT_FDCWD, "/proc/self/stat", 4096, &buf, &size), 0);
        assert_true(size > 20);
        free(buf);
        assert_int_equal(read_file_at(AT_FDCWD, "/proc/self/status", 16, &buf, &size), -EFBIG);
}

static void test_wipe(void **state) {
        assert_int_equal(write_file_atomic_at(dir_fd, "secret", "s3cret", 6, 0600, 0), 0);
        assert_int_equal(wipe_file_at(dir_fd, "secret"), 0);
        assert_int_equal(faccessat(dir_fd, "secret", F_OK, 0), -1);
        assert_int_equal(wipe_file_at(dir_fd, "secret"), -ENOENT);
}

static void test_hashmap(void **state) {
        Hashmap *h = hashmap_new();
        char keys[2000][8];
        void *v;

        for (int i = 0; i < 2000; i++) {
                snprintf(keys[i], sizeof(keys[i]), "k%d", i);
                assert_int_equal(hashmap_put(h, keys[i], &keys[i]), 0);
        }
        assert_int_equal(hashmap_put(h, "k7", NULL), -EEXIST);
        assert_int_equal(hashmap_size(h), 2000);
        for (int i = 0; i < 2000; i += 2)
                assert_ptr_equal(hashmap_remove(h, keys[i]), &keys[i]);
        assert_null(hashmap_remove(h, "k0"));
        assert_int_equal(hashmap_size(h), 1000);
        /* Removal must not break probe chains: every remaining key is still found. */
        for (int i = 0; i < 2000; i++)
                assert_ptr_equal(hashmap_get(h, keys[i]), i % 2 ? (void *) &keys[i] : NULL);
        size_t it = 0, n = 0;
        while (hashmap_iterate(h, &it, &v))
                n++;
        assert_int_equal(n, 1000);
        hashmap_free(h);
}

static void test_hex(void **state) {
        uint8_t *buf = NULL;
        size_t n = 0;
        char *s = hex_encode("\x00\xab\xff", 3);

        assert_string_equal(s, "00abff");
        free(s);
        assert_int_equal(hex_decode("00ABff", &buf, &n), 0);
        assert_int_equal(n, 3);
        assert_memory_equal(buf, "\x00\xab\xff", 3);
        free(buf);
        assert_int_equal(hex_decode("abc", &buf, &n), -EINVAL);
        assert_int_equal(hex_decode("zz", &buf, &n), -EINVAL);
}

static void test_ecdsa_formats(void **state) {
        uint8_t raw[64], back[64], *der = NULL;
        size_t der_size = 0;

        /* Leading zero bytes in r and s: DER drops them, raw form keeps fixed 32-byte halves. */
        memset(raw, 0, sizeof(raw));
        raw[31] = 1;
        raw[32] = 0x80;
        raw[63] = 2;
        assert_int_equal(ecdsa_raw_to_der(raw, 32, &der, &der_size), 0);
        assert_int_equal(ecdsa_der_to_raw(der, der_size, 32, back), 0);
        assert_memory_equal(raw, back, 64);
        /* Non-canonical DER (a trailing byte, a padded length) is refused. */
        uint8_t longer[80];
        memcpy(longer, der, der_size);
        longer[der_size] = 0;
        assert_int_equal(ecdsa_der_to_raw(longer, der_size + 1, 32, back), -EBADMSG);
        free(der);
        assert_int_equal(ecdsa_der_to_raw((const uint8_t *) "\x30\x00", 2, 32, back), -EBADMSG);
}

/* p256_spki_from_xy() writes the DER itself: it must be OpenSSL's encoding of the same point, byte for
 * byte (revocation entries and kids hash it), including coordinates with leading zero bytes. */
static void test_p256_spki_from_xy(void **state) {
        for (unsigned i = 0; i < 64; i++) {
                EVP_PKEY *pkey = EVP_EC_gen("P-256");
                uint8_t x[P256_COORD_SIZE], y[P256_COORD_SIZE], *ours = NULL, *openssl = NULL;
                size_t ours_size = 0, openssl_size = 0;

                assert_non_null(pkey);
                assert_int_equal(pkey_to_spki_der(pkey, &openssl, &openssl_size), 0);
                assert_int_equal(p256_spki_to_xy(openssl, openssl_size, x, y), 0);
                assert_int_equal(p256_spki_from_xy(x, y, &ours, &ours_size), 0);
                assert_int_equal(ours_size, P256_SPKI_DER_SIZE);
                assert_int_equal(openssl_size, P256_SPKI_DER_SIZE);
                assert_memory_equal(ours, openssl, P256_SPKI_DER_SIZE);
                /* And it reads back as the same point. */
                uint8_t x2[P256_COORD_SIZE], y2[P256_COORD_SIZE];
                assert_int_equal(p256_spki_to_xy(ours, ours_size, x2, y2), 0);
                assert_memory_equal(x, x2, sizeof(x));
                assert_memory_equal(y, y2, sizeof(y));
                free(ours);
                free(openssl);
                EVP_PKEY_free(pkey);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_atomic_write),
                cmocka_unit_test(test_read_limits),
                cmocka_unit_test(test_wipe),
                cmocka_unit_test(test_hashmap),
                cmocka_unit_test(test_hex),
                cmocka_unit_test(test_ecdsa_formats),
                cmocka_unit_test(test_p256_spki_from_xy),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
