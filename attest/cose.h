/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * COSE_Sign1 with ES256 (RFC 9052 §4.2, §4.4; RFC 9053 §2.1) as agentid profiles it (DESIGN §5; CDDL
 * in docs/formats.md): tagged 18, protected header {1: -7, 4: kid} plus, for signed messages, label 15
 * (CWT Claims, RFC 9597); the unprotected header is always the empty map; the signature is r || s.
 *
 * COSE_Sign (RFC 9052 §4.1, tag 98) with several ES256 signers, each over its own Sig_structure, is at
 * the end of this header; agentid uses it for rotation statements (old key and host key).
 *
 * Producing one takes two steps because the signature is made elsewhere — by the TPM, in the worker
 * thread: cose_sign1_prepare() encodes the headers and hashes the Sig_structure, the TPM signs
 * cose_sign1_digest(), and cose_sign1_finish() assembles the message around the signature. ECDSA signs
 * a hash, so a TPM2_Sign with an ECDSA-SHA256 key over that digest is an ES256 signature over the
 * Sig_structure. A CoseSign1 is not modified after cose_sign1_prepare(), so once handed over it may be
 * read from another thread.
 *
 * cose_sign1_check() is the verifier side: strict parsing of exactly that profile plus the signature
 * check. It depends on OpenSSL, libcbor and common/ only.
 */

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

/* Largest payload this module signs or accepts; the daemon applies its own, smaller limit. */
#define COSE_PAYLOAD_MAX (1024U * 1024U)
/* Largest payload of the *_large/_max variants: host-key statements that grow with the host's history
 * (a revocation list of 100,000 entries, docs/formats.md §10). */
#define COSE_LARGE_PAYLOAD_MAX (16U * 1024U * 1024U)
/* kid: agentid uses the 34-byte TPM Name; anything from 1 to 64 bytes is accepted. */
#define COSE_KID_MAX 64U
/* Text claims in label 15 (aud, task_id, parent_task_id), in bytes. */
#define COSE_CLAIM_TEXT_MAX 256U
/* Largest protected header bytes accepted: kid and three text claims fit with room to spare. */
#define COSE_PROTECTED_MAX 2048U
/* ES256 signature: r || s, 32 bytes each (RFC 9053 §2.1). */
#define COSE_ES256_SIG_SIZE 64U

/* COSE header labels (RFC 9052 §3.1; RFC 9597 §2) and the ES256 algorithm identifier (RFC 9053 §2.1). */
#define COSE_HEADER_ALG 1
#define COSE_HEADER_KID 4
#define COSE_HEADER_CWT_CLAIMS 15
#define COSE_ALG_ES256 (-7)
/* CWT claim keys used in label 15 (RFC 8392 §3.1). */
#define CWT_CLAIM_AUD 3
#define CWT_CLAIM_IAT 6
/* COSE_Sign1_Tagged (RFC 9052 §2). */
#define COSE_SIGN1_TAG 18U

/*
 * The CWT Claims header parameter (label 15, RFC 9597) of a signed message: {6: iat, 3: aud,
 * "task_id": ..., "parent_task_id": ...}. iat is always written; a NULL text is an omitted key. Texts
 * are 1..COSE_CLAIM_TEXT_MAX bytes of UTF-8.
 */
typedef struct CoseClaims {
        uint64_t iat;                   /* NumericDate */
        const char *aud;
        const char *task_id;
        const char *parent_task_id;
} CoseClaims;

typedef struct CoseSign1 CoseSign1;

/*
 * cose_sign1_prepare() - encode the protected header and hash the Sig_structure
 * @kid: key identifier (1..COSE_KID_MAX bytes; agentid uses the key's TPM Name)
 * @claims: label 15 claims, or NULL for none (receipts and other host-key statements)
 * @payload: the bytes to sign (may be NULL when payload_size is 0); copied
 *
 * Protected header = deterministic CBOR of {1: -7, 4: kid, 15: claims}; Sig_structure =
 * ["Signature1", protected, h'', payload] (RFC 9052 §4.4); digest = SHA-256(Sig_structure).
 *
 * Return: 0 and a new object in *ret; -EINVAL for bad input (kid size, payload over COSE_PAYLOAD_MAX,
 *         an empty, oversized or non-UTF-8 claim text); -ENOMEM.
 */
int cose_sign1_prepare(const uint8_t *kid, size_t kid_size, const CoseClaims *claims, const uint8_t *payload,
                       size_t payload_size, CoseSign1 **ret);

/* cose_sign1_prepare() without claims for a payload of up to COSE_LARGE_PAYLOAD_MAX bytes (revocation
 * lists). The verifier must then parse with cose_sign1_parse_max(). */
int cose_sign1_prepare_large(const uint8_t *kid, size_t kid_size, const uint8_t *payload, size_t payload_size,
                             CoseSign1 **ret);

/* The SHA-256 digest (32 bytes) of the Sig_structure: what the TPM signs. Borrowed from c. */
const uint8_t *cose_sign1_digest(const CoseSign1 *c);

/*
 * cose_sign1_finish() - assemble COSE_Sign1_Tagged around a signature over cose_sign1_digest()
 * @sig_rs: ES256 signature r || s, each 32 bytes big-endian and left-padded (not DER)
 *
 * Output: 18([protected, {}, payload, sig_rs]) in deterministic encoding, starting with 0xd2. The
 * signature is not checked here; c is unchanged, so finishing twice gives the same bytes.
 *
 * Return: 0 and a malloc'd buffer; -EINVAL; -ENOMEM.
 */
int cose_sign1_finish(const CoseSign1 *c, const uint8_t sig_rs[COSE_ES256_SIG_SIZE], uint8_t **ret,
                      size_t *ret_size);

CoseSign1 *cose_sign1_free(CoseSign1 *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(CoseSign1 *, cose_sign1_free);

/*
 * cose_sign1_sig_structure() - the Sig_structure for COSE_Sign1 (RFC 9052 §4.4)
 *
 * ["Signature1", protected, external_aad = h'', payload] in deterministic encoding. Exposed so that
 * verifiers and tests can recompute what was signed from the bytes they received.
 *
 * Return: 0 and a malloc'd buffer; -EINVAL (sizes over the limits above); -ENOMEM.
 */
int cose_sign1_sig_structure(const uint8_t *protected, size_t protected_size, const uint8_t *payload,
                             size_t payload_size, uint8_t **ret, size_t *ret_size);

struct cbor_item_t;

/*
 * A COSE_Sign1_Tagged whose structure cose_sign1_parse() accepted. The pointers borrow from the two
 * decoded items, which the object owns; release it with cose_sign1_parsed_done().
 */
typedef struct CoseSign1Parsed {
        struct cbor_item_t *message;            /* the COSE_Sign1 array */
        struct cbor_item_t *header;             /* the protected header map */
        const uint8_t *protected;               /* the protected bytes exactly as received */
        size_t protected_size;
        const uint8_t *payload;
        size_t payload_size;
        const uint8_t *signature;               /* COSE_ES256_SIG_SIZE bytes, r || s */
        const uint8_t *kid;                     /* 1..COSE_KID_MAX bytes */
        size_t kid_size;
        const struct cbor_item_t *claims;       /* label 15, already checked as cose_sign1_check() says; or NULL */
} CoseSign1Parsed;

/*
 * cose_sign1_parse() - the structure checks of cose_sign1_check(), without the signature
 * @ret_reason: on -EBADMSG, a static string naming the first problem (may be NULL)
 *
 * For callers that must look at the header before they know the key (which kid?) or that check the
 * signature as a step of their own (cose_sign1_verify_parsed()). Everything cose_sign1_check()
 * refuses before the signature, this refuses the same way.
 *
 * Return: 0 and *ret filled; -EBADMSG; -EINVAL for bad arguments; -ENOMEM.
 */
int cose_sign1_parse(const uint8_t *cose, size_t size, CoseSign1Parsed *ret, const char **ret_reason);
/* cose_sign1_parse() accepting a payload of up to payload_max bytes (at most COSE_LARGE_PAYLOAD_MAX,
 * else -EINVAL) and a message of up to payload_max + 4096. */
int cose_sign1_parse_max(const uint8_t *cose, size_t size, size_t payload_max, CoseSign1Parsed *ret,
                         const char **ret_reason);

/*
 * cose_sign1_verify_parsed() - verify the ES256 signature of a parsed message with pkey
 *
 * The Sig_structure is rebuilt from the protected bytes and the payload as received.
 *
 * Return: 0 if valid; -EKEYREJECTED if not; -EINVAL (also a pkey that is not EC P-256); -ENOMEM; -EIO.
 */
int cose_sign1_verify_parsed(const CoseSign1Parsed *p, EVP_PKEY *pkey);

void cose_sign1_parsed_done(CoseSign1Parsed *p);

/*
 * cose_sign1_check() - parse an agentid COSE_Sign1_Tagged and verify its ES256 signature
 * @pkey: the EC P-256 public key the message must be signed with
 * @ret_protected, @ret_payload: malloc'd copies of the protected header bytes and the payload (either
 *         pointer pair may be NULL); set only on success
 *
 * Checks, in this order: tag 18 (0xd2), then the rest is one deterministic CBOR item (RFC 8949 §4.2.1)
 * of at most COSE_PAYLOAD_MAX + 4096 bytes; an array of four: protected bstr, unprotected header,
 * payload bstr (not detached), signature bstr of exactly 64 bytes. The unprotected header must be the
 * empty map. The protected bytes must be a deterministic map holding 1 => -7 (ES256) and 4 => kid
 * (1..64 bytes), optionally 15 => CWT claims with exactly the keys and types cose_sign1_prepare()
 * writes (6 uint required; 3, "task_id", "parent_task_id" text), and no other label: agentid defines
 * no other header parameter, and one this code does not understand could be critical (RFC 9052 §3.1).
 * Then the Sig_structure is rebuilt from the received protected bytes and payload and the signature is
 * verified over its SHA-256 digest.
 *
 * Return: 0 if valid; -EBADMSG if malformed or outside the profile; -EKEYREJECTED if the signature
 *         does not verify with pkey; -EINVAL for bad arguments (also a pkey that is not EC P-256);
 *         -ENOMEM; -EIO if OpenSSL fails otherwise.
 */
int cose_sign1_check(const uint8_t *cose, size_t size, EVP_PKEY *pkey, uint8_t **ret_protected,
                     size_t *ret_protected_size, uint8_t **ret_payload, size_t *ret_payload_size);

/* ---- COSE_Sign: several signers (RFC 9052 §4.1) ---------------------------------------------- */

/* COSE_Sign_Tagged (RFC 9052 §2); agentid uses it only for rotation statements. */
#define COSE_SIGN_TAG 98U
#define COSE_SIGN_SIGNERS_MAX 4U

typedef struct CoseSign CoseSign;

/*
 * cose_sign_prepare() - encode a COSE_Sign with n signers and hash each signer's Sig_structure
 * @kids: n key identifiers (1..COSE_KID_MAX bytes each), in the order the signatures appear
 *
 * The body's protected header is empty (h''), its unprotected header the empty map; each signer has
 * protected {1: -7, 4: kid} and an empty unprotected map. Signer i's Sig_structure is
 * ["Signature", h'', sign_protected_i, h'', payload] (RFC 9052 §4.4).
 *
 * Return: 0; -EINVAL (n = 0 or over COSE_SIGN_SIGNERS_MAX, bad kid or payload size); -ENOMEM.
 */
int cose_sign_prepare(const uint8_t *const *kids, const size_t *kid_sizes, size_t n, const uint8_t *payload,
                      size_t payload_size, CoseSign **ret);
/* The SHA-256 digest the i-th signer signs (borrowed), or NULL for i out of range. */
const uint8_t *cose_sign_digest(const CoseSign *c, size_t i);
size_t cose_sign_n_signers(const CoseSign *c);
/*
 * cose_sign_finish() - 98([h'', {}, payload, [[protected_i, {}, sig_i]...]]) in deterministic encoding
 * @sigs: one r || s signature per signer, in order
 */
int cose_sign_finish(const CoseSign *c, const uint8_t (*sigs)[COSE_ES256_SIG_SIZE], uint8_t **ret, size_t *ret_size);
CoseSign *cose_sign_free(CoseSign *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(CoseSign *, cose_sign_free);

/*
 * cose_sign_parse() - the structure checks of cose_sign_check(), without the signatures
 * @n: the number of signatures the message must have
 * @ret_payload: malloc'd copy of the payload, on success (may be NULL)
 * @ret_reason: on -EBADMSG, a static string naming the first problem (may be NULL)
 *
 * For a verifier that reports the format as a step of its own before the signatures. Nothing read
 * here is to be trusted before cose_sign_check() accepted the message.
 *
 * Return: 0; -EBADMSG; -EINVAL; -ENOMEM.
 */
int cose_sign_parse(const uint8_t *msg, size_t size, size_t n, uint8_t **ret_payload, size_t *ret_payload_size,
                    const char **ret_reason);

/*
 * cose_sign_check() - parse a COSE_Sign_Tagged in exactly the profile above and verify every signature
 * @pkeys: n EC P-256 keys; signature i must verify with pkeys[i], and the message must have exactly n
 * @ret_payload: malloc'd copy of the payload, on success (may be NULL)
 *
 * The profile: d8 62 (tag 98), then one deterministic CBOR item of at most COSE_PAYLOAD_MAX + 4096
 * bytes: [h'', {}, payload bstr, [n × [protected bstr, {}, signature bstr(64)]]], each signer's
 * protected header exactly {1: -7, 4: kid (1..64 bytes)}. Signatures are checked in order, over the
 * Sig_structure rebuilt from the received bytes; the kids are not compared with anything (the keys
 * are the caller's).
 *
 * Return: 0 if valid; -EBADMSG (malformed or outside the profile, also a signer count other than n);
 *         -EKEYREJECTED with *ret_failed = the index of the first signature that does not verify;
 *         -EINVAL (also a key that is not EC P-256); -ENOMEM; -EIO.
 */
int cose_sign_check(const uint8_t *msg, size_t size, EVP_PKEY *const *pkeys, size_t n, size_t *ret_failed,
                    uint8_t **ret_payload, size_t *ret_payload_size);
