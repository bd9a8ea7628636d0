/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test-only evidence generator (see fake-evidence.h). Software keys stand in for the TPM: what the TPM
 * would marshal and sign is marshalled and signed here, byte for byte.
 */

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <string.h>

#include "attest/cose.h"
#include "common/crypto-util.h"
#include "common/hexutil.h"
#include "common/macro.h"
#include "common/task-policy.h"
#include "tests/lib/fake-evidence.h"

#define ALG_SHA256 0x000BU
#define ALG_NULL 0x0010U
#define ALG_ECDSA 0x0018U
#define ALG_ECC 0x0023U
#define ECC_NIST_P256 0x0003U
#define ST_ATTEST_CERTIFY 0x8017U
#define ST_ATTEST_QUOTE 0x8018U
#define GENERATED_VALUE 0xff544347U
#define RH_OWNER 0x40000001U
#define RH_ENDORSEMENT 0x4000000BU

#define RH_NULL 0x40000007U

/* TPMA_OBJECT (Part 2 §8.3): fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA | sign,
 * plus restricted for the AK; a task key without userWithAuth (it signs through its policy only). */
#define KEY_ATTRIBUTES 0x00040472U
#define AK_ATTRIBUTES 0x00050472U
#define TASK_KEY_ATTRIBUTES 0x00040432U

DEFINE_TRIVIAL_CLEANUP_FUNC(EC_GROUP *, EC_GROUP_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EC_POINT *, EC_POINT_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_PARAM_BLD *, OSSL_PARAM_BLD_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(OSSL_PARAM *, OSSL_PARAM_free);

/* ---- marshalling (big-endian, Part 1 §9) ------------------------------------------------------- */

typedef struct Writer {
        uint8_t b[2048];
        size_t n;
        bool overflow;
} Writer;

static void w_bytes(Writer *w, const void *p, size_t n) {
        if (n > sizeof(w->b) - w->n) {
                w->overflow = true;
                return;
        }
        if (n > 0)
                memcpy(w->b + w->n, p, n);
        w->n += n;
}

static void w_u8(Writer *w, uint8_t v) {
        w_bytes(w, &v, 1);
}

static void w_u16(Writer *w, uint16_t v) {
        uint8_t b[2] = { (uint8_t) (v >> 8), (uint8_t) v };
        w_bytes(w, b, sizeof(b));
}

static void w_u32(Writer *w, uint32_t v) {
        uint8_t b[4] = { (uint8_t) (v >> 24), (uint8_t) (v >> 16), (uint8_t) (v >> 8), (uint8_t) v };
        w_bytes(w, b, sizeof(b));
}

static void w_u64(Writer *w, uint64_t v) {
        w_u32(w, (uint32_t) (v >> 32));
        w_u32(w, (uint32_t) v);
}

/* TPM2B: UINT16 size and the bytes; the size is written as given (capped to what the array holds). */
static void w_tpm2b(Writer *w, const uint8_t *p, uint16_t size, size_t cap) {
        w_u16(w, size);
        w_bytes(w, p, MIN((size_t) size, cap));
}

static int writer_out(const Writer *w, uint8_t **ret, size_t *ret_size) {
        if (w->overflow)
                return -E2BIG;
        uint8_t *c = malloc(w->n ? w->n : 1);
        if (!c)
                return -ENOMEM;
        memcpy(c, w->b, w->n);
        *ret = c;
        *ret_size = w->n;
        return 0;
}

int fake_public_marshal(const FakePublic *p, uint8_t **ret, size_t *ret_size) {
        Writer w = {};

        /* Part 2 §12.2.4 TPMT_PUBLIC; §12.2.3.6 TPMS_ECC_PARMS; §11.2.5.2 TPMS_ECC_POINT. */
        w_u16(&w, p->type);
        w_u16(&w, p->name_alg);
        w_u32(&w, p->attributes);
        w_tpm2b(&w, p->auth_policy, p->auth_policy_size, sizeof(p->auth_policy));
        w_u16(&w, p->sym_alg);
        if (p->sym_alg != ALG_NULL) {
                w_u16(&w, p->sym_key_bits);
                w_u16(&w, p->sym_mode);
        }
        w_u16(&w, p->scheme);
        if (p->scheme != ALG_NULL)
                w_u16(&w, p->scheme_hash);
        w_u16(&w, p->curve);
        w_u16(&w, p->kdf);
        if (p->kdf != ALG_NULL)
                w_u16(&w, p->kdf_hash);
        w_tpm2b(&w, p->x, p->x_size, sizeof(p->x));
        w_tpm2b(&w, p->y, p->y_size, sizeof(p->y));
        return writer_out(&w, ret, ret_size);
}

static int attest_marshal(const FakeAttest *a, uint8_t **ret, size_t *ret_size) {
        Writer w = {};

        /* Part 2 §10.12.8 TPMS_ATTEST; §10.11.1 TPMS_CLOCK_INFO. */
        w_u32(&w, a->magic);
        w_u16(&w, a->type);
        w_tpm2b(&w, a->qualified_signer, a->qualified_signer_size, sizeof(a->qualified_signer));
        w_tpm2b(&w, a->extra_data, a->extra_data_size, sizeof(a->extra_data));
        w_u64(&w, a->clock);
        w_u32(&w, a->reset_count);
        w_u32(&w, a->restart_count);
        w_u8(&w, a->safe);
        w_u64(&w, a->firmware_version);
        if (a->type == ST_ATTEST_QUOTE) {
                /* §10.12.4 TPMS_QUOTE_INFO: TPML_PCR_SELECTION, TPM2B_DIGEST. */
                w_u32(&w, a->n_selections);
                for (uint32_t i = 0; i < MIN(a->n_selections, 4U); i++) {
                        w_u16(&w, a->selections[i].hash);
                        w_u8(&w, a->selections[i].size_of_select);
                        w_bytes(&w, a->selections[i].select, MIN(a->selections[i].size_of_select, 8));
                }
                w_tpm2b(&w, a->pcr_digest, a->pcr_digest_size, sizeof(a->pcr_digest));
        } else {
                /* §10.12.3 TPMS_CERTIFY_INFO: name, qualifiedName. */
                w_tpm2b(&w, a->name, a->name_size, sizeof(a->name));
                w_tpm2b(&w, a->qualified_name, a->qualified_name_size, sizeof(a->qualified_name));
        }
        return writer_out(&w, ret, ret_size);
}

static int signature_marshal(const FakeSignature *s, uint8_t **ret, size_t *ret_size) {
        Writer w = {};

        /* Part 2 §11.3.4 TPMT_SIGNATURE with TPMS_SIGNATURE_ECDSA (§11.3.2). */
        w_u16(&w, s->sig_alg);
        w_u16(&w, s->hash);
        w_tpm2b(&w, s->r, s->r_size, sizeof(s->r));
        w_tpm2b(&w, s->s, s->s_size, sizeof(s->s));
        return writer_out(&w, ret, ret_size);
}

/* ---- keys and signatures ---------------------------------------------------------------------- */

EVP_PKEY *fake_key_from_seed(const char *seed) {
        _cleanup_(EC_GROUP_freep) EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
        _cleanup_(EC_POINT_freep) EC_POINT *pub = NULL;
        _cleanup_(BN_freep) BIGNUM *priv = NULL;
        _cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = NULL;
        _cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = NULL;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        uint8_t d[32], point[65];
        EVP_PKEY *pkey = NULL;

        if (!group || sha256(seed, strlen(seed), d) < 0)
                return NULL;
        /* SHA-256 output is below the P-256 order with overwhelming probability; fine for fixed seeds. */
        priv = BN_bin2bn(d, sizeof(d), NULL);
        pub = EC_POINT_new(group);
        if (!priv || !pub || EC_POINT_mul(group, pub, priv, NULL, NULL, NULL) != 1 ||
            EC_POINT_point2oct(group, pub, POINT_CONVERSION_UNCOMPRESSED, point, sizeof(point), NULL) != sizeof(point))
                return NULL;

        bld = OSSL_PARAM_BLD_new();
        if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) != 1 ||
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) != 1)
                return NULL;
        params = OSSL_PARAM_BLD_to_param(bld);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
            EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1)
                return NULL;
        return pkey;
}

int fake_key_point(EVP_PKEY *key, uint8_t x[32], uint8_t y[32]) {
        uint8_t point[65];
        size_t n = 0;

        if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point), &n) != 1 ||
            n != sizeof(point) || point[0] != 0x04)
                return -EINVAL;
        memcpy(x, point + 1, 32);
        memcpy(y, point + 33, 32);
        return 0;
}

static void public_common(EVP_PKEY *key, uint32_t attributes, FakePublic *ret) {
        *ret = (FakePublic) {
                .type = ALG_ECC,
                .name_alg = ALG_SHA256,
                .attributes = attributes,
                .sym_alg = ALG_NULL,
                .scheme = ALG_ECDSA,
                .scheme_hash = ALG_SHA256,
                .curve = ECC_NIST_P256,
                .kdf = ALG_NULL,
                .x_size = 32,
                .y_size = 32,
        };
        if (fake_key_point(key, ret->x, ret->y) < 0)
                ret->x_size = ret->y_size = 0;
}

void fake_public_ak(EVP_PKEY *key, FakePublic *ret) {
        public_common(key, AK_ATTRIBUTES, ret);
}

void fake_public_key(EVP_PKEY *key, FakePublic *ret) {
        public_common(key, KEY_ATTRIBUTES, ret);
}

void fake_task_policy(uint8_t ret[32]) {
        (void) task_policy_digest(FAKE_TASK_CLOCK_LIMIT, FAKE_RESET_COUNT, FAKE_RESTART_COUNT, ret);
}

void fake_public_task_key(EVP_PKEY *key, FakePublic *ret) {
        public_common(key, TASK_KEY_ATTRIBUTES, ret);
        fake_task_policy(ret->auth_policy);
        ret->auth_policy_size = 32;
}

int fake_ak_public_bytes(EVP_PKEY *ak, uint8_t **ret, size_t *ret_size) {
        FakePublic p;
        fake_public_ak(ak, &p);
        return fake_public_marshal(&p, ret, ret_size);
}

/* ECDSA over md(msg) (or over msg itself when it already is the digest), as r || s of 32 bytes. */
static int sign_rs(EVP_PKEY *key, const EVP_MD *md, const uint8_t *msg, size_t n, bool prehashed,
                   uint8_t raw[64]) {
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        uint8_t digest[EVP_MAX_MD_SIZE], der[P256_DER_SIG_MAX + 16];
        unsigned digest_size = 0;
        size_t der_size = sizeof(der);

        if (prehashed) {
                if (n > sizeof(digest))
                        return -EINVAL;
                memcpy(digest, msg, n);
                digest_size = (unsigned) n;
        } else if (EVP_Digest(msg, n, digest, &digest_size, md, NULL) != 1)
                return -EIO;

        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
        if (!ctx || EVP_PKEY_sign_init(ctx) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, md) != 1 ||
            EVP_PKEY_sign(ctx, der, &der_size, digest, digest_size) != 1)
                return -EIO;
        return ecdsa_der_to_raw(der, der_size, 32, raw);
}

int fake_sign_digest(EVP_PKEY *key, const uint8_t digest[32], uint8_t rs[64]) {
        return sign_rs(key, EVP_sha256(), digest, 32, true, rs);
}

/* ---- names -------------------------------------------------------------------------------------- */

static int name_of(const uint8_t *pub, size_t size, uint8_t ret[FAKE_NAME_SIZE]) {
        /* Part 1 §16: 00 0b || SHA-256(TPMT_PUBLIC). */
        ret[0] = 0x00;
        ret[1] = 0x0b;
        return sha256(pub, size, ret + 2);
}

static int qn_of(const uint8_t *parent, size_t parent_size, const uint8_t name[FAKE_NAME_SIZE],
                 uint8_t ret[FAKE_NAME_SIZE]) {
        const void *parts[] = { parent, name };
        const size_t sizes[] = { parent_size, FAKE_NAME_SIZE };
        ret[0] = 0x00;
        ret[1] = 0x0b;
        return sha256_parts(parts, sizes, 2, ret + 2);
}

static int hierarchy_qn(uint32_t hierarchy, const uint8_t name[FAKE_NAME_SIZE], uint8_t ret[FAKE_NAME_SIZE]) {
        const uint8_t h[4] = { (uint8_t) (hierarchy >> 24), (uint8_t) (hierarchy >> 16), (uint8_t) (hierarchy >> 8),
                               (uint8_t) hierarchy };
        return qn_of(h, sizeof(h), name, ret);
}

/* ---- maps --------------------------------------------------------------------------------------- */

static bool key_matches(const cbor_item_t *k, const char *text_key, int64_t int_key) {
        const char *s;
        size_t l;
        int64_t i;

        if (text_key)
                return cbor_util_get_text(k, &s, &l) >= 0 && l == strlen(text_key) && memcmp(s, text_key, l) == 0;
        return cbor_util_get_int(k, &i) >= 0 && i == int_key;
}

static cbor_item_t *map_copy_without(const cbor_item_t *map, const char *text_key, int64_t int_key) {
        cbor_item_t *copy = cbor_util_new_map();
        size_t n = cbor_map_size(map);
        struct cbor_pair *pairs = cbor_map_handle(map);

        for (size_t i = 0; copy && i < n; i++) {
                if (key_matches(pairs[i].key, text_key, int_key))
                        continue;
                if (cbor_util_map_put(copy, cbor_incref(pairs[i].key), cbor_incref(pairs[i].value)) < 0) {
                        cbor_decref(&copy);
                        return NULL;
                }
        }
        return copy;
}

void fake_map_delete(cbor_item_t **map, const char *text_key, int64_t int_key) {
        cbor_item_t *copy = map_copy_without(*map, text_key, int_key);
        if (!copy)
                abort();
        cbor_decref(map);
        *map = copy;
}

void fake_map_set(cbor_item_t **map, const char *text_key, int64_t int_key, cbor_item_t *value) {
        fake_map_delete(map, text_key, int_key);
        int r = text_key ? cbor_util_map_put_text(*map, text_key, value) : cbor_util_map_put_int(*map, int_key, value);
        if (r < 0)
                abort();
}

/* ---- building ----------------------------------------------------------------------------------- */

static void call(const FakeSpec *spec, FakeStage stage, void *object) {
        if (spec->hook)
                spec->hook(stage, object, spec->userdata);
}

void fake_spec_default(FakeSpec *spec, bool platform, EVP_PKEY *ak, EVP_PKEY *key) {
        static const char srk_seed[] = "agentid test SRK";

        *spec = (FakeSpec) {
                .platform = platform,
                .ak = ak,
                .key = key,
                .nonce_size = 32,
                .iat = 1764000000,
        };
        for (size_t i = 0; i < 32; i++)
                spec->nonce[i] = (uint8_t) i;
        spec->srk_name[0] = 0x00;
        spec->srk_name[1] = 0x0b;
        (void) sha256(srk_seed, strlen(srk_seed), spec->srk_name + 2);
}

static void bytes_free(FakeBytes *b) {
        free(b->data);
        *b = (FakeBytes) {};
}

/* Public area (made by init) → hook → bytes → hook. */
static int build_public_as(const FakeSpec *spec, EVP_PKEY *key, bool ak, void (*init)(EVP_PKEY *, FakePublic *),
                           FakeBytes *ret) {
        FakePublic p;
        int r;

        init(key, &p);
        call(spec, ak ? FAKE_AK_PUBLIC : FAKE_KEY_PUBLIC, &p);
        r = fake_public_marshal(&p, &ret->data, &ret->size);
        if (r < 0)
                return r;
        call(spec, ak ? FAKE_AK_PUBLIC_BYTES : FAKE_KEY_PUBLIC_BYTES, ret);
        return 0;
}

static int build_public(const FakeSpec *spec, EVP_PKEY *key, bool ak, FakeBytes *ret) {
        return build_public_as(spec, key, ak, ak ? fake_public_ak : fake_public_key, ret);
}

static cbor_item_t *default_claims(const FakeSpec *spec, const uint8_t x[32], const uint8_t y[32]) {
        uint8_t digest[32], exe[32];
        char host_id[33], sub[128];
        cbor_item_t *claims = cbor_util_new_map(), *cnf = cbor_util_new_map(), *cose_key = cbor_util_new_map(),
                    *workload = cbor_util_new_map();
        int k = 0;

        if (!claims || !cnf || !cose_key || !workload || sha256(spec->srk_name, FAKE_NAME_SIZE, digest) < 0)
                abort();
        hex_encode_to(digest, 16, host_id);
        snprintf(sub, sizeof(sub), "agentid://%s/invoice-bot", host_id);
        memset(exe, 0x11, sizeof(exe));

        /* RFC 8747 §3.1 cnf with a COSE_Key EC2 P-256 (RFC 9053 §7.1.1). */
        k |= cbor_util_map_put_int(cose_key, 1, cbor_util_new_uint(2));
        k |= cbor_util_map_put_int(cose_key, -1, cbor_util_new_uint(1));
        k |= cbor_util_map_put_int(cose_key, -2, cbor_util_new_bytes(x, 32));
        k |= cbor_util_map_put_int(cose_key, -3, cbor_util_new_bytes(y, 32));
        k |= cbor_util_map_put_int(cnf, 1, cose_key);

        k |= cbor_util_map_put_text(workload, "exe_sha256", cbor_util_new_bytes(exe, sizeof(exe)));
        k |= cbor_util_map_put_text(workload, "exe_path", cbor_util_new_text("/usr/libexec/invoice-bot"));
        k |= cbor_util_map_put_text(workload, "unit", cbor_util_new_text("invoice-bot.service"));
        k |= cbor_util_map_put_text(workload, "uid", cbor_util_new_uint(1000));
        k |= cbor_util_map_put_text(workload, "pid", cbor_util_new_uint(4242));

        /* EAT claims (RFC 9711 §4; CWT keys RFC 8392 §3.1) and agentid's profile claims. */
        k |= cbor_util_map_put_int(claims, 10, cbor_util_new_bytes(spec->nonce, spec->nonce_size));
        k |= cbor_util_map_put_int(claims, 6, cbor_util_new_uint(spec->iat));
        k |= cbor_util_map_put_int(claims, 2, cbor_util_new_text(sub));
        k |= cbor_util_map_put_int(claims, 8, cnf);
        k |= cbor_util_map_put_int(claims, 265, cbor_util_new_text("tag:agentid.org,2026:v1"));
        k |= cbor_util_map_put_text(claims, "owner", cbor_util_new_text("finance-platform@example.com"));
        k |= cbor_util_map_put_text(claims, "uid", cbor_util_new_uint(1000));
        k |= cbor_util_map_put_text(claims, "created", cbor_util_new_uint(spec->iat - 3600));
        k |= cbor_util_map_put_text(claims, "not_after", cbor_util_new_uint(spec->iat + 86400));
        k |= cbor_util_map_put_text(claims, "workload", workload);
        k |= cbor_util_map_put_text(claims, "task_id", cbor_util_new_text("task-7f3a"));
        k |= cbor_util_map_put_text(claims, "daemon", cbor_util_new_text("0.1.0"));
        if (k != 0)
                abort();
        return claims;
}

static int build_eat(const FakeSpec *spec, const uint8_t key_name[FAKE_NAME_SIZE],
                     FakeBytes *ret_payload, FakeBytes *ret_eat) {
        _cleanup_(cose_sign1_freep) CoseSign1 *c = NULL;
        cbor_item_t *claims;
        uint8_t x[32], y[32], sig[64];
        FakeCose cose = { .signer = spec->key, .kid_size = FAKE_NAME_SIZE, .claims_iat = spec->iat };
        int r;

        r = fake_key_point(spec->key, x, y);
        if (r < 0)
                return r;
        claims = default_claims(spec, x, y);
        call(spec, FAKE_CLAIMS, &claims);
        r = cbor_util_encode(claims, &ret_payload->data, &ret_payload->size);
        cbor_decref(&claims);
        if (r < 0)
                return r;
        call(spec, FAKE_PAYLOAD_BYTES, ret_payload);

        memcpy(cose.kid, key_name, FAKE_NAME_SIZE);
        call(spec, FAKE_EAT, &cose);
        const CoseClaims label15 = { .iat = cose.claims_iat };
        r = cose_sign1_prepare(cose.kid, cose.kid_size, cose.with_claims ? &label15 : NULL, ret_payload->data,
                               ret_payload->size, &c);
        if (r < 0)
                return r;
        /* What agentidd does with TPM2_Sign: ECDSA over the Sig_structure digest (formats.md §3). */
        r = sign_rs(cose.signer, EVP_sha256(), cose_sign1_digest(c), 32, true, sig);
        if (r < 0)
                return r;
        r = cose_sign1_finish(c, sig, &ret_eat->data, &ret_eat->size);
        if (r < 0)
                return r;
        call(spec, FAKE_EAT_BYTES, ret_eat);
        return 0;
}

/* FakeAttest → hook → bytes → hook → signed by the AK → hook → TPMT_SIGNATURE bytes → hook. */
static int build_attest(const FakeSpec *spec, FakeAttest *a, bool quote, FakeBytes *ret_attest, FakeBytes *ret_sig) {
        FakeSignature s = { .signer = spec->ak, .md = EVP_sha256() };
        uint8_t raw[64];
        int r;

        call(spec, quote ? FAKE_QUOTE : FAKE_CERTIFY, a);
        r = attest_marshal(a, &ret_attest->data, &ret_attest->size);
        if (r < 0)
                return r;
        call(spec, quote ? FAKE_QUOTE_BYTES : FAKE_CERTIFY_BYTES, ret_attest);

        /* Part 3 §18.2/§18.4: the TPM signs H(attest) with the AK's scheme, ECDSA-SHA256. */
        call(spec, quote ? FAKE_QUOTE_SIGN : FAKE_CERTIFY_SIGN, &s);
        r = sign_rs(s.signer, s.md, ret_attest->data, ret_attest->size, false, raw);
        if (r < 0)
                return r;
        s.sig_alg = ALG_ECDSA;
        s.hash = (uint16_t) (EVP_MD_is_a(s.md, "SHA2-256") ? ALG_SHA256 : EVP_MD_is_a(s.md, "SHA2-384") ? 0x000C : 0x0004);
        memcpy(s.r, raw, 32);
        memcpy(s.s, raw + 32, 32);
        s.r_size = s.s_size = 32;
        call(spec, quote ? FAKE_QUOTE_SIG : FAKE_CERTIFY_SIG, &s);
        r = signature_marshal(&s, &ret_sig->data, &ret_sig->size);
        if (r < 0)
                return r;
        call(spec, quote ? FAKE_QUOTE_SIG_BYTES : FAKE_CERTIFY_SIG_BYTES, ret_sig);
        return 0;
}

static void attest_header(const uint8_t ak_name[FAKE_NAME_SIZE], uint16_t type, FakeAttest *a) {
        static const char ek_seed[] = "agentid test EK";
        uint8_t ek_name[FAKE_NAME_SIZE], ek_qn[FAKE_NAME_SIZE];

        *a = (FakeAttest) {
                .magic = GENERATED_VALUE,
                .type = type,
                .qualified_signer_size = FAKE_NAME_SIZE,
                .clock = FAKE_CLOCK,
                .reset_count = FAKE_RESET_COUNT,
                .restart_count = FAKE_RESTART_COUNT,
                .safe = 1,
                .firmware_version = 0x2019102300163636ULL,
        };
        /* The AK sits under the EK in the endorsement hierarchy (tpm-notes §1.1): qualifiedSigner =
         * QN(AK) = 000b || H(QN(EK) || Name(AK)), QN(EK) = 000b || H(4000000b || Name(EK)). */
        ek_name[0] = 0x00;
        ek_name[1] = 0x0b;
        (void) sha256(ek_seed, strlen(ek_seed), ek_name + 2);
        (void) hierarchy_qn(RH_ENDORSEMENT, ek_name, ek_qn);
        (void) qn_of(ek_qn, sizeof(ek_qn), ak_name, a->qualified_signer);
}

int fake_evidence_build(const FakeSpec *spec, uint8_t **ret, size_t *ret_size) {
        _cleanup_(bytes_free) FakeBytes ak_pub = {}, key_pub = {}, payload = {}, eat = {}, certify = {},
                                        certify_sig = {}, quote = {}, quote_sig = {}, out = {};
        _cleanup_cbor_ cbor_item_t *tpm = NULL, *evidence = NULL, *pcr_array = NULL;
        uint8_t ak_name[FAKE_NAME_SIZE], key_name[FAKE_NAME_SIZE], srk_qn[FAKE_NAME_SIZE];
        uint8_t pcrs[8][32], payload_digest[32];
        const void *parts[8];
        size_t sizes[8];
        FakeAttest a;
        int r, k = 0;

        if (!spec || !spec->ak || !spec->key || !ret || !ret_size)
                return -EINVAL;

        r = build_public(spec, spec->ak, true, &ak_pub);
        if (r < 0)
                return r;
        r = build_public(spec, spec->key, false, &key_pub);
        if (r < 0)
                return r;
        if ((r = name_of(ak_pub.data, ak_pub.size, ak_name)) < 0 ||
            (r = name_of(key_pub.data, key_pub.size, key_name)) < 0)
                return r;

        if (!spec->platform) {
                r = build_eat(spec, key_name, &payload, &eat);
                if (r < 0)
                        return r;
        }

        /* PCR values: a stand-in for a boot; PCR i holds 32 bytes of a0 + i. */
        for (size_t i = 0; i < 8; i++)
                memset(pcrs[i], 0xa0 + (int) i, 32);
        call(spec, FAKE_PCRS, &pcrs);

        /* TPM2_Certify (Part 3 §18.2): name and qualifiedName of the key, extraData = qualifyingData =
         * SHA-256(nonce). The key is a child of the SRK in the owner hierarchy. */
        attest_header(ak_name, ST_ATTEST_CERTIFY, &a);
        a.extra_data_size = 32;
        if ((r = sha256(spec->nonce, spec->nonce_size, a.extra_data)) < 0)
                return r;
        memcpy(a.name, key_name, FAKE_NAME_SIZE);
        a.name_size = FAKE_NAME_SIZE;
        if ((r = hierarchy_qn(RH_OWNER, spec->srk_name, srk_qn)) < 0 ||
            (r = qn_of(srk_qn, sizeof(srk_qn), key_name, a.qualified_name)) < 0)
                return r;
        a.qualified_name_size = FAKE_NAME_SIZE;
        r = build_attest(spec, &a, false, &certify, &certify_sig);
        if (r < 0)
                return r;

        /* TPM2_Quote (Part 3 §18.4) over SHA-256 PCRs 0-7; extraData binds nonce, key and claims
         * (agent evidence) or nonce and host key (platform evidence). */
        attest_header(ak_name, ST_ATTEST_QUOTE, &a);
        a.extra_data_size = 32;
        parts[0] = spec->nonce;
        sizes[0] = spec->nonce_size;
        parts[1] = key_name;
        sizes[1] = FAKE_NAME_SIZE;
        if (!spec->platform) {
                r = sha256(payload.data, payload.size, payload_digest);
                if (r < 0)
                        return r;
                parts[2] = payload_digest;
                sizes[2] = sizeof(payload_digest);
        }
        r = sha256_parts(parts, sizes, spec->platform ? 2 : 3, a.extra_data);
        if (r < 0)
                return r;
        a.n_selections = 1;
        a.selections[0].hash = ALG_SHA256;
        a.selections[0].size_of_select = 3;
        a.selections[0].select[0] = 0xff;
        for (size_t i = 0; i < 8; i++) {
                parts[i] = pcrs[i];
                sizes[i] = 32;
        }
        r = sha256_parts(parts, sizes, 8, a.pcr_digest);
        if (r < 0)
                return r;
        a.pcr_digest_size = 32;
        r = build_attest(spec, &a, true, &quote, &quote_sig);
        if (r < 0)
                return r;

        /* The maps (DESIGN §5); cbor_util_encode() orders the keys. */
        tpm = cbor_util_new_map();
        evidence = cbor_util_new_map();
        pcr_array = cbor_util_new_array();
        if (!tpm || !evidence || !pcr_array)
                return -ENOMEM;
        for (size_t i = 0; i < 8; i++)
                k |= cbor_util_array_push(pcr_array, cbor_util_new_bytes(pcrs[i], 32));
        k |= cbor_util_map_put_text(tpm, spec->platform ? "host_pub" : "key_pub", cbor_util_new_bytes(key_pub.data, key_pub.size));
        k |= cbor_util_map_put_text(tpm, spec->platform ? "host_certify" : "certify", cbor_util_new_bytes(certify.data, certify.size));
        k |= cbor_util_map_put_text(tpm, spec->platform ? "host_certify_sig" : "certify_sig",
                                    cbor_util_new_bytes(certify_sig.data, certify_sig.size));
        k |= cbor_util_map_put_text(tpm, "quote", cbor_util_new_bytes(quote.data, quote.size));
        k |= cbor_util_map_put_text(tpm, "quote_sig", cbor_util_new_bytes(quote_sig.data, quote_sig.size));
        k |= cbor_util_map_put_text(tpm, "pcrs", TAKE_PTR(pcr_array));
        k |= cbor_util_map_put_text(tpm, "ak_pub", cbor_util_new_bytes(ak_pub.data, ak_pub.size));
        k |= cbor_util_map_put_text(tpm, "srk_name", cbor_util_new_bytes(spec->srk_name, FAKE_NAME_SIZE));
        if (k != 0)
                return -ENOMEM;
        call(spec, FAKE_TPM_MAP, &tpm);

        k |= cbor_util_map_put_text(evidence, "v", cbor_util_new_uint(1));
        if (spec->platform)
                k |= cbor_util_map_put_text(evidence, "type", cbor_util_new_text("platform"));
        else
                k |= cbor_util_map_put_text(evidence, "eat", cbor_util_new_bytes(eat.data, eat.size));
        k |= cbor_util_map_put_text(evidence, "tpm", TAKE_PTR(tpm));
        if (k != 0)
                return -ENOMEM;
        call(spec, FAKE_EVIDENCE_MAP, &evidence);

        r = cbor_util_encode(evidence, &out.data, &out.size);
        if (r < 0)
                return r;
        call(spec, FAKE_EVIDENCE_BYTES, &out);
        *ret = TAKE_PTR(out.data);
        *ret_size = out.size;
        return 0;
}

/* ---- task keys ---------------------------------------------------------------------------------- */

void fake_task_key_done(FakeTaskKey *k) {
        bytes_free(&k->pub);
        bytes_free(&k->certify);
        bytes_free(&k->certify_sig);
}

int fake_task_key_build(const FakeSpec *spec, const uint8_t cti[16], FakeTaskKey *ret) {
        static const char null_primary_seed[] = "agentid test NULL primary";
        _cleanup_(bytes_free) FakeBytes ak_pub = {};
        _cleanup_(fake_task_key_done) FakeTaskKey k = {};
        uint8_t ak_name[FAKE_NAME_SIZE], key_name[FAKE_NAME_SIZE], primary[FAKE_NAME_SIZE], primary_qn[FAKE_NAME_SIZE];
        FakeAttest a;
        int r;

        if (!spec || !spec->ak || !spec->key || !cti || !ret)
                return -EINVAL;

        r = build_public(spec, spec->ak, true, &ak_pub);
        if (r < 0)
                return r;
        r = build_public_as(spec, spec->key, false, fake_public_task_key, &k.pub);
        if (r < 0)
                return r;
        if ((r = name_of(ak_pub.data, ak_pub.size, ak_name)) < 0 || (r = name_of(k.pub.data, k.pub.size, key_name)) < 0)
                return r;

        /* TPM2_Certify (Part 3 §18.2) with qualifyingData = SHA-256(cti) (DESIGN §5). The task key is a
         * child of a primary in the NULL hierarchy (keystore/task-key.h): QN = 000b || H(QN(primary) ||
         * Name), QN(primary) = 000b || H(40000007 || Name(primary)). */
        attest_header(ak_name, ST_ATTEST_CERTIFY, &a);
        a.extra_data_size = 32;
        if ((r = sha256(cti, 16, a.extra_data)) < 0)
                return r;
        memcpy(a.name, key_name, FAKE_NAME_SIZE);
        a.name_size = FAKE_NAME_SIZE;
        primary[0] = 0x00;
        primary[1] = 0x0b;
        if ((r = sha256(null_primary_seed, strlen(null_primary_seed), primary + 2)) < 0 ||
            (r = hierarchy_qn(RH_NULL, primary, primary_qn)) < 0 ||
            (r = qn_of(primary_qn, sizeof(primary_qn), key_name, a.qualified_name)) < 0)
                return r;
        a.qualified_name_size = FAKE_NAME_SIZE;
        r = build_attest(spec, &a, false, &k.certify, &k.certify_sig);
        if (r < 0)
                return r;

        *ret = k;
        k = (FakeTaskKey) {};
        return 0;
}
