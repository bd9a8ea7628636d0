/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Enrollment, verifier side: prove that an attestation key (AK) lives in the TPM that owns a certified
 * endorsement key (EK), by credential activation (TPM 2.0 Part 1 §24, Part 3 §12.5-§12.6; tpm-notes
 * §2.4). Formats in docs/formats.md §7.
 *
 *   request (host)  -> enroll_check_request(): CBOR, EK certificate chain, EK public area rebuilt from
 *                      the certificate and the standard template, AK attributes
 *                   -> enroll_make_challenge(): MakeCredential in software; the challenge goes to the
 *                      host, the state (holding the secret) stays with the verifier
 *   response (host) -> enroll_finish(): the secret the TPM released equals the state's -> AK record
 *
 * The TPM releases the secret only to the holder of the EK's private key, and only if the object at
 * activateHandle has exactly Name(AK); Name(AK) commits to the attributes checked here. So a matching
 * response proves a restricted, fixedTPM signing key resident in the TPM the EK certificate names.
 *
 * Only OpenSSL, libcbor and common/; TPM structures are built and parsed by our own code.
 */

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/tpm2-types.h"
#include "common/macro.h"

/* Bounds of the request's byte strings (bytes). */
#define ENROLL_AK_PUB_MAX 1024U
#define ENROLL_EK_PUB_MAX 1024U
#define ENROLL_EK_CERT_MAX 4096U
/* Largest request, state, record or challenge document. */
#define ENROLL_DOCUMENT_MAX (12U * 1024U)
/* The credential: 32 random bytes (≤ the digest size of every EK nameAlg we accept). */
#define ENROLL_SECRET_SIZE 32U
/* host-id: 32 lower-case hex digits (DESIGN §2). */
#define ENROLL_HOST_ID_LEN 32U
/* Name(AK): the AK must have nameAlg SHA-256, so 00 0b || SHA-256(TPMT_PUBLIC). */
#define ENROLL_AK_NAME_SIZE TPM2P_NAME_SHA256_SIZE

typedef enum EnrollEkType {
        ENROLL_EK_RSA,          /* RSA-2048, template L-1 */
        ENROLL_EK_ECC,          /* ECC NIST P-256 (L-2) or P-384 (H-3) */
} EnrollEkType;

/* "rsa" / "ecc", as in the request and the challenge. */
const char *enroll_ek_type_to_string(EnrollEkType t);

/* Why a document was refused: the check that failed (a static name: "format", "ek_certificate",
 * "ek_public", "ak_attributes", "state", "secret") and a human-readable detail. */
typedef struct EnrollError {
        const char *check;
        char detail[256];
} EnrollError;

/* A checked enrollment request. Everything here was verified except host_id, which is the host's
 * claim (nothing in the request proves it; it is carried into the record as a label). */
typedef struct EnrollRequest {
        char host_id[ENROLL_HOST_ID_LEN + 1];
        uint8_t *ak_pub;                /* TPMT_PUBLIC of the AK, checked */
        size_t ak_pub_size;
        uint8_t ak_name[ENROLL_AK_NAME_SIZE];
        EnrollEkType ek_type;
        uint8_t *ek_pub;                /* TPMT_PUBLIC of the EK rebuilt from the certificate */
        size_t ek_pub_size;
        uint8_t ek_name[2 + TPM2P_DIGEST_MAX];  /* nameAlg || H(ek_pub) */
        size_t ek_name_size;
        uint8_t *ek_cert;               /* DER, chains to one of the given CAs */
        size_t ek_cert_size;
        char ek_subject[128];           /* the certificate's subject, one line, for display */
} EnrollRequest;

EnrollRequest *enroll_request_free(EnrollRequest *req);
DEFINE_TRIVIAL_CLEANUP_FUNC(EnrollRequest *, enroll_request_free);

/*
 * enroll_check_request() - parse and check an enrollment request
 * @ca_files: PEM (one or more certificates) or DER files; self-signed certificates are the trusted
 *         roots, the others untrusted intermediates
 * @err: on -EKEYREJECTED / -EBADMSG, which check refused the request and why
 *
 * Return: 0 and a request; -EBADMSG (malformed request); -EKEYREJECTED (a check refused it);
 *         -EINVAL (bad arguments, or no usable CA certificate in the files: err says which);
 *         -ENOMEM; -EIO (OpenSSL); -errno reading a CA file.
 */
int enroll_check_request(const uint8_t *buf, size_t size, const char *const *ca_files, size_t n_ca_files,
                         EnrollRequest **ret, EnrollError *err);

/*
 * enroll_ek_public_from_cert() - the EK's TPMT_PUBLIC from its certificate's key and the standard
 * template of the TCG EK Credential Profile: RSA-2048 -> L-1, P-256 -> L-2, P-384 -> H-3
 *
 * Return: 0 and a malloc'd area; -EOPNOTSUPP for another key type or size; -ENOMEM; -EIO.
 */
int enroll_ek_public_from_cert(X509 *cert, EnrollEkType *ret_type, uint8_t **ret, size_t *ret_size);

/*
 * enroll_make_credential() - TPM2_MakeCredential in software (Part 3 §12.6, Part 1 §24)
 * @ek_pub: the EK's TPMT_PUBLIC (as enroll_ek_public_from_cert() builds it)
 * @name: Name(AK); @secret: the credential (at most the EK nameAlg's digest size)
 * @ret_blob: marshalled TPM2B_ID_OBJECT, with its 2-byte size
 * @ret_enc_secret: marshalled TPM2B_ENCRYPTED_SECRET, with its 2-byte size
 *
 * Return: 0; -EOPNOTSUPP for an EK this code does not know; -EINVAL; -ENOMEM; -EIO.
 */
int enroll_make_credential(const uint8_t *ek_pub, size_t ek_pub_size, const uint8_t *name, size_t name_size,
                           const uint8_t *secret, size_t secret_size, uint8_t **ret_blob, size_t *ret_blob_size,
                           uint8_t **ret_enc_secret, size_t *ret_enc_secret_size);

/*
 * enroll_make_challenge() - a fresh secret, MakeCredential, and the two documents
 * @now: seconds since the epoch, recorded as "issued"
 * @ret_challenge: for the host; @ret_state: for the verifier only (holds the secret: mode 0600)
 *
 * Return: 0; -ENOMEM; -EIO; -errno from the random source.
 */
int enroll_make_challenge(const EnrollRequest *req, uint64_t now, uint8_t **ret_challenge, size_t *ret_challenge_size,
                          uint8_t **ret_state, size_t *ret_state_size);

/*
 * enroll_finish() - check a response against the state and build the AK record
 * @now: the record's "time"
 *
 * Return: 0 and the record; -EBADMSG (state or response malformed; err says which);
 *         -EKEYREJECTED (the secret differs: err->check "secret"); -ENOMEM.
 */
int enroll_finish(const uint8_t *state, size_t state_size, const uint8_t *response, size_t response_size,
                  uint64_t now, uint8_t **ret_record, size_t *ret_record_size, EnrollError *err);

/* A parsed AK record (borrowed pointers into nothing: the fields are copies). */
typedef struct EnrollRecord {
        uint8_t *ak_pub;
        size_t ak_pub_size;
        uint8_t ak_name[ENROLL_AK_NAME_SIZE];
        uint8_t *ek_cert;
        size_t ek_cert_size;
        char host_id[ENROLL_HOST_ID_LEN + 1];
        uint64_t time;
} EnrollRecord;

void enroll_record_done(EnrollRecord *rec);

/*
 * enroll_record_parse() - parse an AK record (docs/formats.md §7.5); ak_name must be Name(ak_pub)
 *
 * Return: 0; -EBADMSG; -ENOMEM. *ret is written only on success.
 */
int enroll_record_parse(const uint8_t *buf, size_t size, EnrollRecord *ret);

/*
 * enroll_ak_public() - the AK's TPMT_PUBLIC from what a verifier is given as its trusted AK: an AK
 * record (docs/formats.md §7.5; its EK certificate was checked at enrollment, not here), a
 * TPM2B_PUBLIC as tpm2-tools writes it, or the TPMT_PUBLIC itself. Only the container is undone; the
 * verifier checks the area.
 *
 * Return: 0 and a malloc'd copy; -EBADMSG for a record that does not parse; -ENOMEM.
 */
int enroll_ak_public(const uint8_t *buf, size_t size, uint8_t **ret, size_t *ret_size);

/* Does buf look like a CBOR map (major type 5) rather than a TPMT_PUBLIC (which starts with 0x00)? */
static inline int enroll_is_cbor_map(const uint8_t *buf, size_t size) {
        return size > 0 && (buf[0] & 0xe0) == 0xa0;
}
