/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Task tokens (see token.h; CDDL in docs/formats.md §8).
 *
 * One deterministic encoding per claims set, and a decoder that accepts exactly that set of encodings:
 * the claims map passes cbor_util_validate() (deterministic, sizes, depth, no duplicate keys) before
 * libcbor sees it, then every key must be one of the claims below with its type and size. So a token
 * token_verify() accepts re-encodes, through token_claims_encode(), to the payload it carried.
 *
 * The envelope is the COSE_Sign1 of cose.c in its token profile: protected header exactly
 * {1: -7, 4: kid} with a 34-byte TPM Name, no label 15 (a signed message is never a token).
 */

#include <string.h>

#include "attest/cose.h"
#include "attest/cwt.h"
#include "attest/token.h"
#include "common/cbor-util.h"

/* agentid's own claims (DESIGN §5: short text keys of the profile tag:agentid.org,2026:v1). */
#define CLAIM_TASK_ID "task_id"
#define CLAIM_PARENT_TASK_ID "parent_task_id"
#define CLAIM_OWNER "owner"
#define CLAIM_HOPS "hops"
#define CLAIM_CREDENTIAL "credential"

static const CwtProfile token_profile = {
        .max = TOKEN_MAX,
        .too_large = "token larger than 8 KiB",
        .signed_message = "protected header carries CWT claims (label 15): a signed message, not a token",
};

/* ------------------------------------------------------------------------------------------------ */
/* Scope (RFC 6749 §3.3, as RFC 8693 §4.2 carries it) */

/* scope-token = 1*( %x21 / %x23-5B / %x5D-7E ): printable ASCII without space, '"' and '\'. */
static bool scope_char_is_valid(char c) {
        return c >= 0x21 && c <= 0x7e && c != '"' && c != '\\';
}

/* The token of s[0..n) starting at *pos; *pos moves past it and its separator. Return: its length,
 * 0 at the end. Only for strings whose syntax was checked. */
static size_t scope_next(const char *s, size_t n, size_t *pos, const char **ret) {
        size_t start = *pos, i = start;

        if (start >= n)
                return 0;
        while (i < n && s[i] != ' ')
                i++;
        *ret = s + start;
        *pos = i < n ? i + 1 : i;
        return i - start;
}

static bool scope_has(const char *s, size_t n, const char *token, size_t len) {
        const char *t;
        size_t pos = 0, l;

        while ((l = scope_next(s, n, &pos, &t)) > 0)
                if (l == len && memcmp(t, token, len) == 0)
                        return true;
        return false;
}

bool token_scope_is_valid(const char *scope) {
        size_t n, n_tokens = 0;

        if (!scope)
                return false;
        n = strnlen(scope, TOKEN_SCOPE_MAX + 1);
        if (n == 0 || n > TOKEN_SCOPE_MAX)
                return false;

        /* scope = scope-token *( SP scope-token ): no empty token, so no leading, trailing or double
         * space. */
        for (size_t i = 0; i <= n; i++) {
                size_t start = i;

                while (i < n && scope[i] != ' ') {
                        if (!scope_char_is_valid(scope[i]))
                                return false;
                        i++;
                }
                if (i == start)
                        return false;
                if (++n_tokens > TOKEN_SCOPES_MAX)
                        return false;
                /* The order of scope tokens does not matter and a repeated one says nothing more; we
                 * refuse it so that each scope has one spelling less to compare. */
                if (scope_has(scope, start, scope + start, i - start))
                        return false;
        }
        return true;
}

bool token_scope_is_subset(const char *child, const char *parent) {
        const char *t;
        size_t pos = 0, l, n_child, n_parent;

        if (!child)
                return true;
        if (!parent || !token_scope_is_valid(child) || !token_scope_is_valid(parent))
                return false;

        n_child = strlen(child);
        n_parent = strlen(parent);
        while ((l = scope_next(child, n_child, &pos, &t)) > 0)
                if (!scope_has(parent, n_parent, t, l))
                        return false;
        return true;
}

/* ------------------------------------------------------------------------------------------------ */
/* Encoding */

/* "credential" is bstr .cbor COSE_Sign1_Tagged (DESIGN §5): its structure is checked here, its
 * signature by whoever relies on the task credential. Return: 0, -EBADMSG, -ENOMEM. */
static int credential_check(const uint8_t *p, size_t n) {
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed parsed = {};
        int r;

        if (n < 1 || n > TOKEN_CREDENTIAL_MAX)
                return -EBADMSG;
        r = cose_sign1_parse(p, n, &parsed, NULL);
        if (r == -ENOMEM)
                return r;
        return r < 0 ? -EBADMSG : 0;
}

static int claims_check_for_encoding(const TokenClaims *c) {
        int r;

        if (!cwt_text_is_valid(c->iss) || !cwt_text_is_valid(c->aud) || !cwt_text_is_valid(c->task_id) ||
            !cwt_text_is_valid(c->owner))
                return -EINVAL;
        if (c->parent_task_id && !cwt_text_is_valid(c->parent_task_id))
                return -EINVAL;
        if (c->scope && !token_scope_is_valid(c->scope))
                return -EINVAL;
        /* The decoder refuses a token that ends before it begins (RFC 8392 §3.1.4-6 leave this to the
         * application; an issuer never has a reason to write one). */
        if (c->nbf > c->exp || c->iat > c->exp)
                return -EINVAL;
        if (c->n_hops > TOKEN_HOPS_MAX || (c->n_hops > 0 && !c->hops))
                return -EINVAL;
        for (size_t i = 0; i < c->n_hops; i++)
                if (!cwt_text_is_valid(c->hops[i].iss) || !cwt_kid_is_valid(c->hops[i].kid, TOKEN_KID_SIZE))
                        return -EINVAL;
        if (c->credential) {
                r = credential_check(c->credential, c->credential_size);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return -EINVAL;
        } else if (c->credential_size > 0)
                return -EINVAL;
        return 0;
}

static cbor_item_t *hops_build(const TokenHop *hops, size_t n) {
        _cleanup_cbor_ cbor_item_t *array = cbor_util_new_array();
        int k = 0;

        if (!array)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                cbor_item_t *hop = cbor_util_new_array();

                /* DESIGN §5: [parent.iss, parent.cti, parent.kid]. */
                if (hop) {
                        k |= cbor_util_array_push(hop, cbor_util_new_text(hops[i].iss));
                        k |= cbor_util_array_push(hop, cbor_util_new_bytes(hops[i].cti, TOKEN_CTI_SIZE));
                        k |= cbor_util_array_push(hop, cbor_util_new_bytes(hops[i].kid, TOKEN_KID_SIZE));
                }
                k |= cbor_util_array_push(array, hop);
        }
        return k == 0 ? TAKE_PTR(array) : NULL;
}

int token_claims_encode(const TokenClaims *c, uint8_t **ret, size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *map = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0;
        int k = 0, r;

        if (!c || !ret || !ret_size)
                return -EINVAL;
        r = claims_check_for_encoding(c);
        if (r < 0)
                return r;

        map = cbor_util_new_map();
        if (!map)
                return -ENOMEM;

        /* RFC 8392 §3.1: registered claims under their integer keys; cbor_util_encode() puts them
         * before the text keys (RFC 8949 §4.2.1), whatever the order here. sub = iss: the agent
         * speaks for itself (DESIGN §5). */
        k |= cbor_util_map_put_int(map, CWT_ISS, cbor_util_new_text(c->iss));
        k |= cbor_util_map_put_int(map, CWT_SUB, cbor_util_new_text(c->iss));
        k |= cbor_util_map_put_int(map, CWT_AUD, cbor_util_new_text(c->aud));
        k |= cbor_util_map_put_int(map, CWT_EXP, cbor_util_new_uint(c->exp));
        k |= cbor_util_map_put_int(map, CWT_NBF, cbor_util_new_uint(c->nbf));
        k |= cbor_util_map_put_int(map, CWT_IAT, cbor_util_new_uint(c->iat));
        k |= cbor_util_map_put_int(map, CWT_CTI, cbor_util_new_bytes(c->cti, TOKEN_CTI_SIZE));
        if (c->scope)
                k |= cbor_util_map_put_int(map, CWT_SCOPE, cbor_util_new_text(c->scope));
        k |= cbor_util_map_put_text(map, CLAIM_TASK_ID, cbor_util_new_text(c->task_id));
        if (c->parent_task_id)
                k |= cbor_util_map_put_text(map, CLAIM_PARENT_TASK_ID, cbor_util_new_text(c->parent_task_id));
        k |= cbor_util_map_put_text(map, CLAIM_OWNER, cbor_util_new_text(c->owner));
        /* Absent in root tokens: an absent value is an omitted key, never an empty array (DESIGN §5). */
        if (c->n_hops > 0)
                k |= cbor_util_map_put_text(map, CLAIM_HOPS, hops_build(c->hops, c->n_hops));
        if (c->credential)
                k |= cbor_util_map_put_text(map, CLAIM_CREDENTIAL,
                                            cbor_util_new_bytes(c->credential, c->credential_size));
        if (k != 0)
                return -ENOMEM;

        /* -EINVAL here means a text that is not UTF-8. */
        r = cbor_util_encode(map, &buf, &size);
        if (r < 0)
                return r;
        /* Never produce a token the verifier would refuse for its size. */
        if (size > TOKEN_MAX - CWT_ENVELOPE_SIZE)
                return -EINVAL;

        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

/* ------------------------------------------------------------------------------------------------ */
/* Decoding */

/* A TokenVerified and what its pointers point into. */
typedef struct TokenStorage {
        TokenVerified verified;         /* first: token_verified_free() gets its address */
        TokenHop hops[TOKEN_HOPS_MAX];
        CwtArena arena;                 /* every text (NUL-terminated) and the credential */
} TokenStorage;

TokenVerified *token_verified_free(TokenVerified *t) {
        if (!t)
                return NULL;
        TokenStorage *s = (TokenStorage *) t;
        free(s->arena.buf);
        return mfree(s);
}

static void token_storage_freep(TokenStorage **s) {
        if (*s)
                token_verified_free(&(*s)->verified);
}

static int hops_parse(TokenStorage *s, const cbor_item_t *item, const char **reason) {
        if (!item || !cbor_isa_array(item) || cbor_array_size(item) < 1 || !cbor_array_handle(item))
                return cwt_bad(reason, "\"hops\" is not a non-empty array");
        size_t n = cbor_array_size(item);
        if (n > TOKEN_HOPS_MAX)
                return cwt_bad(reason, "\"hops\" has more than 8 entries");
        cbor_item_t **e = cbor_array_handle(item);

        for (size_t i = 0; i < n; i++) {
                TokenHop *h = &s->hops[i];

                if (!cbor_isa_array(e[i]) || cbor_array_size(e[i]) != 3 || !cbor_array_handle(e[i]))
                        return cwt_bad(reason, "a hop is not an array [iss, cti, kid]");
                cbor_item_t **f = cbor_array_handle(e[i]);
                if (cwt_claim_text(&s->arena, f[0], TOKEN_TEXT_MAX, &h->iss) < 0)
                        return cwt_bad(reason, "a hop's iss is not a text of 1..256 bytes");
                if (cwt_claim_bytes(f[1], TOKEN_CTI_SIZE, h->cti) < 0)
                        return cwt_bad(reason, "a hop's cti is not a byte string of 16 bytes");
                if (cwt_claim_bytes(f[2], TOKEN_KID_SIZE, h->kid) < 0 || !cwt_kid_is_valid(h->kid, TOKEN_KID_SIZE))
                        return cwt_bad(reason, "a hop's kid is not a 34-byte SHA-256 TPM Name");
        }
        s->verified.claims.hops = s->hops;
        s->verified.claims.n_hops = n;
        return 0;
}

/* The payload: exactly the claims of token.h, each of its type and size. Return: 0; -EBADMSG with
 * *reason; -ENOMEM. */
static int claims_parse(const uint8_t *payload, size_t size, TokenStorage *s, const char **reason) {
        static const CborLimits limits = {
                .max_size = TOKEN_MAX,
                .max_depth = 3,         /* claims map > "hops" > one hop */
                /* 13 claims and 9 hops with room: a tenth hop is reported as such, not as too many items. */
                .max_items = 96,
                .flags = CBOR_VALIDATE_DETERMINISTIC,
        };
        _cleanup_cbor_ cbor_item_t *map = NULL;
        TokenClaims *c = &s->verified.claims;
        const char *sub = NULL;
        bool have_exp = false, have_nbf = false, have_iat = false, have_cti = false;
        struct cbor_pair *pairs = NULL;
        size_t n = 0;
        int r;

        /* Texts: at most 7 claims (sub included) and TOKEN_HOPS_MAX hop issuers; the credential is
         * copied too, inside the payload's size. */
        r = cwt_claims_open(payload, size, &limits, 7 + TOKEN_HOPS_MAX, &s->arena, &map, &pairs, &n, reason);
        if (r < 0)
                return r;

        /* Keys are unique (the validator refuses duplicates), so each claim is seen at most once. */
        for (size_t i = 0; i < n; i++) {
                const cbor_item_t *key = pairs[i].key, *v = pairs[i].value;
                const char *k;
                size_t l;
                int64_t label;

                if (cbor_util_get_int(key, &label) >= 0) {
                        switch (label) {
                        case CWT_ISS:
                                if (cwt_claim_text(&s->arena, v, TOKEN_TEXT_MAX, &c->iss) < 0)
                                        return cwt_bad(reason, "iss (1) is not a text of 1..256 bytes");
                                break;
                        case CWT_SUB:
                                if (cwt_claim_text(&s->arena, v, TOKEN_TEXT_MAX, &sub) < 0)
                                        return cwt_bad(reason, "sub (2) is not a text of 1..256 bytes");
                                break;
                        case CWT_AUD:
                                /* DESIGN §5: aud is a single tstr, never an array. */
                                if (cwt_claim_text(&s->arena, v, TOKEN_TEXT_MAX, &c->aud) < 0)
                                        return cwt_bad(reason, "aud (3) is not a text of 1..256 bytes");
                                break;
                        case CWT_EXP:
                                /* NumericDate (RFC 8392 §2): agentid writes untagged unsigned seconds. */
                                if (cbor_util_get_uint(v, &c->exp) < 0)
                                        return cwt_bad(reason, "exp (4) is not an unsigned integer");
                                have_exp = true;
                                break;
                        case CWT_NBF:
                                if (cbor_util_get_uint(v, &c->nbf) < 0)
                                        return cwt_bad(reason, "nbf (5) is not an unsigned integer");
                                have_nbf = true;
                                break;
                        case CWT_IAT:
                                if (cbor_util_get_uint(v, &c->iat) < 0)
                                        return cwt_bad(reason, "iat (6) is not an unsigned integer");
                                have_iat = true;
                                break;
                        case CWT_CTI:
                                if (cwt_claim_bytes(v, TOKEN_CTI_SIZE, c->cti) < 0)
                                        return cwt_bad(reason, "cti (7) is not a byte string of 16 bytes");
                                have_cti = true;
                                break;
                        case CWT_SCOPE:
                                /* RFC 8693 §4.2: one space-separated string (a text, not an array). */
                                if (cwt_claim_text(&s->arena, v, TOKEN_SCOPE_MAX, &c->scope) < 0 ||
                                    !token_scope_is_valid(c->scope))
                                        return cwt_bad(reason, "scope (9) is not a valid scope string");
                                break;
                        default:
                                return cwt_bad(reason, "unknown claim with an integer key");
                        }
                } else if (cbor_util_get_text(key, &k, &l) >= 0) {
                        if (cwt_text_key_is(k, l, CLAIM_TASK_ID)) {
                                if (cwt_claim_text(&s->arena, v, TOKEN_TEXT_MAX, &c->task_id) < 0)
                                        return cwt_bad(reason, "\"task_id\" is not a text of 1..256 bytes");
                        } else if (cwt_text_key_is(k, l, CLAIM_PARENT_TASK_ID)) {
                                if (cwt_claim_text(&s->arena, v, TOKEN_TEXT_MAX, &c->parent_task_id) < 0)
                                        return cwt_bad(reason, "\"parent_task_id\" is not a text of 1..256 bytes");
                        } else if (cwt_text_key_is(k, l, CLAIM_OWNER)) {
                                if (cwt_claim_text(&s->arena, v, TOKEN_TEXT_MAX, &c->owner) < 0)
                                        return cwt_bad(reason, "\"owner\" is not a text of 1..256 bytes");
                        } else if (cwt_text_key_is(k, l, CLAIM_HOPS)) {
                                r = hops_parse(s, v, reason);
                                if (r < 0)
                                        return r;
                        } else if (cwt_text_key_is(k, l, CLAIM_CREDENTIAL)) {
                                const uint8_t *p;
                                size_t m;

                                if (cbor_util_get_bytes(v, &p, &m) < 0)
                                        return cwt_bad(reason, "\"credential\" is not a byte string");
                                r = credential_check(p, m);
                                if (r == -ENOMEM)
                                        return r;
                                if (r < 0)
                                        return cwt_bad(reason, "\"credential\" is not a COSE_Sign1_Tagged of at most "
                                                           "4096 bytes");
                                c->credential = cwt_arena_copy(&s->arena, p, m, false);
                                if (!c->credential)
                                        return cwt_bad(reason, "\"credential\" does not fit");
                                c->credential_size = m;
                        } else
                                return cwt_bad(reason, "unknown claim with a text key");
                } else
                        return cwt_bad(reason, "a claim key is neither an integer nor a text");
        }

        if (!c->iss || !sub || !c->aud || !have_exp || !have_nbf || !have_iat || !have_cti || !c->task_id ||
            !c->owner)
                return cwt_bad(reason, "a required claim is missing (iss, sub, aud, exp, nbf, iat, cti, task_id, owner)");
        /* The agent issues tokens about itself (DESIGN §5). */
        if (!streq(c->iss, sub))
                return cwt_bad(reason, "sub (2) is not iss (1)");
        if (c->nbf > c->exp)
                return cwt_bad(reason, "nbf (5) is after exp (4)");
        if (c->iat > c->exp)
                return cwt_bad(reason, "iat (6) is after exp (4)");
        return 0;
}

int token_peek_kid(const uint8_t *token, size_t size, uint8_t ret_kid[TOKEN_KID_SIZE], const char **ret_reason) {
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        const char *reason = NULL;
        int r;

        if ((!token && size > 0) || !ret_kid)
                return -EINVAL;

        r = cwt_envelope_parse(&token_profile, token, size, &p, &reason);
        if (r < 0)
                return cwt_refused(r, reason, ret_reason);
        memcpy(ret_kid, p.kid, TOKEN_KID_SIZE);
        return 0;
}

int token_verify(const uint8_t *token, size_t size, EVP_PKEY *pkey, TokenVerified **ret, const char **ret_reason) {
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        _cleanup_(token_storage_freep) TokenStorage *s = NULL;
        const char *reason = NULL;
        int r;

        if ((!token && size > 0) || !pkey || !ret)
                return -EINVAL;

        r = cwt_envelope_parse(&token_profile, token, size, &p, &reason);
        if (r < 0)
                return cwt_refused(r, reason, ret_reason);

        /* The signature before the claims: nothing the payload says is looked at until the key is
         * known to have said it. A signature that cannot even be converted does not verify either,
         * so -EBADMSG keeps meaning "the claims" from here on (token.h). */
        r = cose_sign1_verify_parsed(&p, pkey);
        if (r == -EKEYREJECTED || r == -EBADMSG)
                return cwt_refused(-EKEYREJECTED, "the signature does not verify with the key", ret_reason);
        if (r < 0)
                return r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        r = claims_parse(p.payload, p.payload_size, s, &reason);
        if (r < 0)
                return cwt_refused(r, reason, ret_reason);
        memcpy(s->verified.kid, p.kid, TOKEN_KID_SIZE);

        *ret = &TAKE_PTR(s)->verified;
        return 0;
}
