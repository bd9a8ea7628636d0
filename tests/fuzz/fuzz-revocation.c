/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Revocation lists and rotation statements: the payload decoders of attest/revocation.h, COSE_Sign
 * (cose_sign_parse(), cose_sign_check()), and the verifier's agentid_verifier_add_revocations() and
 * agentid_verify_rotation(), with two fixed P-256 keys. The seeds in corpus/revocation/ were made by
 * tests/unit/test-revocation.c (AGENTID_TEST_DUMP_DIR) and signed with those keys — the host key
 * (SHA-256 seed "agentid revocation test: host key") and the old key of the rotation ("...:
 * invoice-bot") — so the accepting paths are reached too.
 *
 * Invariants: only the documented errors, a reason with every refusal; what a decoder accepts
 * re-encodes to exactly the input (one encoding per list and statement); a list the verifier accepts
 * with the host key it also accepts without; parse and check agree on the COSE_Sign structure; a
 * rotation verdict lists its three checks in order and is valid only if cose_sign_check() accepts.
 */

#include <errno.h>
#include <openssl/x509.h>
#include <string.h>

#include "attest/cose.h"
#include "attest/revocation.h"
#include "attest/verify.h"
#include "tests/fuzz/fuzz.h"

/* DER SubjectPublicKeyInfo of the host key that signed the seeds. */
static const uint8_t host_key_der[] = {
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
        0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x4d, 0xba, 0x36, 0xfc, 0xbc,
        0x7b, 0x4b, 0xc1, 0xdb, 0x55, 0xae, 0xef, 0xf5, 0x75, 0x18, 0x9a, 0xcf, 0x70, 0xcc, 0xc2, 0xdf,
        0x5f, 0x2f, 0x3d, 0x59, 0x9f, 0x27, 0x44, 0x00, 0xe5, 0xc6, 0x4a, 0xc5, 0xcc, 0x12, 0x98, 0xcf,
        0x61, 0x9a, 0xab, 0xd2, 0xf3, 0x8f, 0x20, 0xc9, 0x52, 0x94, 0xe7, 0xd3, 0xc8, 0x58, 0x25, 0x1f,
        0xcd, 0xe4, 0xc0, 0x85, 0xd2, 0xe2, 0x25, 0xea, 0x26, 0xa3, 0x80,
};

/* DER SubjectPublicKeyInfo of the key the seed rotation statement rotates out. */
static const uint8_t old_key_der[] = {
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
        0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x06, 0x7a, 0xab, 0xce, 0x06,
        0x1e, 0x63, 0x2f, 0x9d, 0x4f, 0xc3, 0x6b, 0x94, 0xb0, 0x9e, 0x47, 0xb9, 0x21, 0x9a, 0xfe, 0x92,
        0xc3, 0x2d, 0xdb, 0x26, 0x98, 0x4c, 0x50, 0x05, 0xae, 0x4d, 0xc6, 0xc1, 0xa6, 0xe0, 0x6a, 0xd7,
        0xd1, 0x4d, 0x5f, 0x74, 0xef, 0xf7, 0x20, 0x19, 0x7f, 0x24, 0x03, 0xa5, 0xc3, 0x1f, 0x0c, 0xbb,
        0x6f, 0xae, 0xab, 0x2e, 0x9d, 0xcc, 0xc0, 0x18, 0x63, 0x67, 0x0a,
};

static EVP_PKEY *key_of(const uint8_t *der, size_t size) {
        const unsigned char *p = der;
        EVP_PKEY *key = d2i_PUBKEY(NULL, &p, (long) size);
        FUZZ_CHECK(key);
        return key;
}

/* The list decoder: refusals say why; what it accepts is consistent and re-encodes to the input. */
static void fuzz_list_payload(const uint8_t *data, size_t size) {
        _cleanup_(revocation_list_done) RevocationList l = {};
        _cleanup_free_ uint8_t *again = NULL;
        size_t again_size = 0;
        const char *why = NULL;
        int r;

        r = revocation_list_decode(data, size, &l, &why);
        FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -EFBIG || r == -ENOMEM);
        FUZZ_CHECK(r != -EBADMSG || why);
        if (r < 0) {
                FUZZ_CHECK(l.n_entries == 0 && !l.entries);
                return;
        }

        FUZZ_CHECK(strlen(l.host) == REVOCATION_HOST_ID_SIZE);
        FUZZ_CHECK(l.n_entries <= REVOCATION_ENTRIES_MAX);
        for (size_t i = 0; i < l.n_entries; i++) {
                const RevocationEntry *e = &l.entries[i];
                FUZZ_CHECK(revocation_type_to_string(e->type));
                FUZZ_CHECK(e->name && e->reason);
                FUZZ_CHECK(strlen(e->name) >= 1 && strlen(e->name) <= REVOCATION_TEXT_MAX);
                FUZZ_CHECK(strlen(e->reason) <= REVOCATION_TEXT_MAX);
                FUZZ_CHECK(e->kid[0] == 0x00 && e->kid[1] == 0x0b);
                FUZZ_CHECK(e->has_cti == (e->type == REVOCATION_TASK_END));
                /* find() returns the first entry naming a key: this one or an earlier one. */
                const RevocationEntry *f = revocation_list_find(&l, e->kid, NULL);
                FUZZ_CHECK(f && f <= e && memcmp(f->kid, e->kid, REVOCATION_KID_SIZE) == 0);
                if (e->has_cti)
                        FUZZ_CHECK(revocation_list_find_cti(&l, e->cti));
        }

        r = revocation_list_encode(&l, &again, &again_size);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(again_size == size && memcmp(again, data, size) == 0);
}

static void fuzz_rotation_payload(const uint8_t *data, size_t size) {
        _cleanup_(rotation_statement_parsed_done) RotationStatementParsed p = {};
        _cleanup_free_ uint8_t *again = NULL;
        size_t again_size = 0;
        const char *why = NULL;
        int r;

        r = rotation_statement_decode(data, size, &p, &why);
        FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM);
        FUZZ_CHECK(r != -EBADMSG || why);
        if (r < 0)
                return;

        const RotationStatement s = {
                .name = p.name,
                .uri = p.uri,
                .old_kid = p.old_kid,
                .new_kid = p.new_kid,
                .new_spki_sha256 = p.new_spki_sha256,
                .reason = p.reason,
                .time = p.time,
        };
        r = rotation_statement_payload(&s, &again, &again_size);
        if (r == -ENOMEM)
                return;
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(again_size == size && memcmp(again, data, size) == 0);
}

static void fuzz_cose_sign(const uint8_t *data, size_t size, EVP_PKEY *old_key, EVP_PKEY *host_key) {
        _cleanup_free_ uint8_t *parsed = NULL, *checked = NULL;
        size_t parsed_size = 0, checked_size = 0, failed = SIZE_MAX;
        EVP_PKEY *keys[] = { old_key, host_key };
        const char *why = NULL;
        int p, c;

        p = cose_sign_parse(data, size, 2, &parsed, &parsed_size, &why);
        FUZZ_CHECK(p == 0 || p == -EBADMSG || p == -ENOMEM);
        FUZZ_CHECK(p != -EBADMSG || why);
        FUZZ_CHECK(p == 0 || !parsed);

        c = cose_sign_check(data, size, keys, 2, &failed, &checked, &checked_size);
        FUZZ_CHECK(c == 0 || c == -EBADMSG || c == -EKEYREJECTED || c == -ENOMEM || c == -EIO);
        FUZZ_CHECK((c == -EKEYREJECTED) == (failed != SIZE_MAX));
        FUZZ_CHECK(failed == SIZE_MAX || failed < 2);
        FUZZ_CHECK(c == 0 || !checked);
        /* The same structure checks: malformed for one is malformed for the other. */
        if (p == -EBADMSG)
                FUZZ_CHECK(c == -EBADMSG || c == -ENOMEM || c == -EIO);
        if (c == 0 || c == -EKEYREJECTED)
                FUZZ_CHECK(p == 0 || p == -ENOMEM);
        if (c == 0 && p == 0) {
                FUZZ_CHECK(size >= 2 && data[0] == 0xd8 && data[1] == COSE_SIGN_TAG);
                FUZZ_CHECK(checked_size == parsed_size && memcmp(checked, parsed, parsed_size) == 0);
                FUZZ_CHECK(parsed_size == 0 || memmem(data, size, parsed, parsed_size));
        }
}

static void fuzz_verifier(const uint8_t *data, size_t size) {
        AgentidVerifier *with_key = agentid_verifier_new(), *without_key = agentid_verifier_new();
        const char *why = NULL;
        uint64_t seq = 0, issued = 0;
        size_t n = SIZE_MAX;
        int r, u;

        if ((!with_key || !without_key) && fuzz_out_of_memory()) {
                agentid_verifier_free(with_key);
                agentid_verifier_free(without_key);
                return;
        }
        FUZZ_CHECK(with_key && without_key);
        r = agentid_verifier_add_revocations(with_key, data, size, host_key_der, sizeof(host_key_der), 0, &why);
        /* Under an injected allocation failure any refusal is acceptable (see fuzz-token.c). */
        FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -EKEYREJECTED || r == -EFBIG || r == -ENOMEM ||
                   (r < 0 && fuzz_out_of_memory()));
        FUZZ_CHECK(r == 0 || r == -ENOMEM || why || fuzz_out_of_memory());
        const char *host = agentid_verifier_revocations_info(with_key, &seq, &issued, &n);
        FUZZ_CHECK((r == 0) == (host != NULL));
        if (host) {
                FUZZ_CHECK(strlen(host) == REVOCATION_HOST_ID_SIZE && n <= REVOCATION_ENTRIES_MAX);
                /* Not below its own seq, and never above it. A second add that runs out of memory
                 * leaves the list in place, which the -ESTALE below shows. */
                int again = agentid_verifier_add_revocations(with_key, data, size, host_key_der,
                                                             sizeof(host_key_der), seq, NULL);
                FUZZ_CHECK(again == 0 || (again < 0 && fuzz_out_of_memory()));
                if (seq < UINT64_MAX) {
                        again = agentid_verifier_add_revocations(with_key, data, size, host_key_der,
                                                                 sizeof(host_key_der), seq + 1, NULL);
                        FUZZ_CHECK(again == -ESTALE || (again < 0 && fuzz_out_of_memory()));
                }
        }

        /* Without the host key only the signature goes unchecked. */
        u = agentid_verifier_add_revocations(without_key, data, size, NULL, 0, 0, &why);
        FUZZ_CHECK(u == 0 || u == -EBADMSG || u == -EFBIG || u == -ENOMEM);
        if (r == 0)
                FUZZ_CHECK(u == 0 || u == -ENOMEM);
        if (r == -EBADMSG)
                FUZZ_CHECK(u == -EBADMSG || u == -ENOMEM);

        agentid_verifier_free(with_key);
        agentid_verifier_free(without_key);
}

static void fuzz_rotation_verdict(const uint8_t *data, size_t size, EVP_PKEY *old_key, EVP_PKEY *host_key) {
        AgentidVerifier *v = agentid_verifier_new();
        AgentidVerdict *d = NULL;
        int r;

        if (!v && fuzz_out_of_memory())
                return;
        FUZZ_CHECK(v);
        r = agentid_verify_rotation(v, data, size, old_key_der, sizeof(old_key_der), host_key_der,
                                    sizeof(host_key_der), &d);
        /* Any refusal under an injected allocation failure: see fuzz-token.c. */
        FUZZ_CHECK(r == 0 || r == -ENOMEM || r == -EIO || (r < 0 && fuzz_out_of_memory()));
        if (r == 0) {
                AgentidReason reason = agentid_verdict_reason(d), expected = AGENTID_REASON_ROTATION_FORMAT;
                bool seen_failure = false;

                FUZZ_CHECK(agentid_verdict_n_checks(d) == 3);
                for (size_t i = 0; i < 3; i++, expected++) {
                        AgentidReason c;
                        const char *name = NULL, *detail = NULL;
                        bool ok;
                        FUZZ_CHECK(agentid_verdict_get_check(d, i, &c, &name, &ok, &detail) == 0);
                        FUZZ_CHECK(c == expected && name && detail);
                        if (!ok && !seen_failure) {
                                FUZZ_CHECK(reason == c);
                                seen_failure = true;
                        }
                }
                FUZZ_CHECK(seen_failure == !agentid_verdict_is_valid(d));
                FUZZ_CHECK((agentid_verdict_get_rotation(d) != NULL) == agentid_verdict_is_valid(d));
                if (agentid_verdict_is_valid(d)) {
                        EVP_PKEY *keys[] = { old_key, host_key };
                        const AgentidRotation *rot = agentid_verdict_get_rotation(d);
                        r = cose_sign_check(data, size, keys, 2, NULL, NULL, NULL);
                        FUZZ_CHECK(r == 0 || (r < 0 && fuzz_out_of_memory()));
                        FUZZ_CHECK(rot->name && rot->uri && rot->reason);
                        FUZZ_CHECK(memcmp(rot->old_kid, rot->new_kid, AGENTID_TPM_NAME_SIZE) != 0);
                }
        }
        agentid_verdict_free(d);
        agentid_verifier_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static EVP_PKEY *old_key = NULL, *host_key = NULL;

        if (!old_key) {
                old_key = key_of(old_key_der, sizeof(old_key_der));
                host_key = key_of(host_key_der, sizeof(host_key_der));
        }

        fuzz_list_payload(data, size);
        fuzz_rotation_payload(data, size);
        fuzz_cose_sign(data, size, old_key, host_key);
        fuzz_verifier(data, size);
        fuzz_rotation_verdict(data, size, old_key, host_key);
        return 0;
}
