/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Small OpenSSL 3 helpers shared by the keystore and the verifier: SHA-256, ECDSA signature format
 * conversion, P-256 public keys as DER SubjectPublicKeyInfo, randomness and constant-time compares.
 * OpenSSL errors are turned into -errno here; the error queue is cleared.
 */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

#define SHA256_DIGEST_SIZE 32U
#define P256_COORD_SIZE 32U
/* Raw ECDSA P-256 signature r || s, each left-padded to 32 bytes (RFC 9053 §2.1, COSE ES256). */
#define P256_RAW_SIG_SIZE 64U
/* Largest DER ECDSA-Sig-Value for P-256: SEQUENCE { INTEGER r, INTEGER s } with sign bytes. */
#define P256_DER_SIG_MAX 72U

int sha256(const void *data, size_t size, uint8_t ret[SHA256_DIGEST_SIZE]);
/* SHA-256 over several buffers in order (iov-style: ptr, len pairs; n_parts of them). */
int sha256_parts(const void *const *parts, const size_t *sizes, size_t n_parts, uint8_t ret[SHA256_DIGEST_SIZE]);

/* SHA-256 of everything readable from fd (to EOF), at most max bytes. Return: 0; -EFBIG; -errno. */
int sha256_fd(int fd, uint64_t max, uint8_t ret[SHA256_DIGEST_SIZE]);

/* Fill buf from the kernel CSPRNG (getrandom). Return: 0 or -errno. */
int random_bytes(void *buf, size_t n);

/* A character of the base64 alphabet or its padding (RFC 4648 §4). */
bool base64_is_char(uint8_t c);
/* Decode base64 text (RFC 4648 §4) as the CLIs print it; white space (line breaks) is skipped.
 * Return: 0 and a malloc'd buffer; -EINVAL if it is not base64; -ENOMEM. */
int base64_decode(const void *text, size_t size, uint8_t **ret, size_t *ret_size);

/* Constant-time equality of two equally long buffers (for secrets; CRYPTO_memcmp). */
bool memeq_secret(const void *a, const void *b, size_t n);

/*
 * ecdsa_raw_to_der() - convert r||s (each coord_size bytes, big-endian) into DER ECDSA-Sig-Value
 * Return: 0 and a malloc'd DER buffer; -EINVAL; -ENOMEM.
 */
int ecdsa_raw_to_der(const uint8_t *raw, size_t coord_size, uint8_t **ret, size_t *ret_size);
/*
 * ecdsa_der_to_raw() - parse a DER ECDSA-Sig-Value into r||s, left-padded to coord_size each
 * Return: 0; -EBADMSG if not a strict DER signature or r/s do not fit.
 */
int ecdsa_der_to_raw(const uint8_t *der, size_t der_size, size_t coord_size, uint8_t *ret_raw);

/* Build a P-256 public key from affine coordinates (validated to be on the curve). */
int p256_pkey_from_xy(const uint8_t x[P256_COORD_SIZE], const uint8_t y[P256_COORD_SIZE], EVP_PKEY **ret);
/*
 * p256_pkey_canonical() - a decoded public key as agentid uses keys: P-256, rebuilt from its affine
 * coordinates with the public-key check (on the curve, not the point at infinity: SEC 1 §3.2.2).
 * d2i_PUBKEY() accepts the point at infinity, with which any ECDSA signature verifies. Also gives the
 * coordinates (x, y of 32 bytes). pkey is not consumed. Return: 0; -EINVAL; -ENOMEM.
 */
int p256_pkey_canonical(EVP_PKEY *pkey, EVP_PKEY **ret, uint8_t x[P256_COORD_SIZE], uint8_t y[P256_COORD_SIZE]);
/* The affine coordinates of a P-256 public key given as DER SubjectPublicKeyInfo. */
int p256_spki_to_xy(const uint8_t *der, size_t der_size, uint8_t x[P256_COORD_SIZE], uint8_t y[P256_COORD_SIZE]);
/* DER SubjectPublicKeyInfo of a public key. */
int pkey_to_spki_der(EVP_PKEY *pkey, uint8_t **ret, size_t *ret_size);
/* The DER SubjectPublicKeyInfo of a P-256 point, byte for byte what pkey_to_spki_der() gives for it
 * (named curve, uncompressed point: P256_SPKI_DER_SIZE bytes), without OpenSSL's encoder, which costs
 * a millisecond per key. It does not check the point is on the curve: use it for points a TPM made. */
#define P256_SPKI_DER_SIZE 91U
void p256_spki_write(const uint8_t x[P256_COORD_SIZE], const uint8_t y[P256_COORD_SIZE],
                     uint8_t ret[P256_SPKI_DER_SIZE]);
/* The same, malloc'd. */
int p256_spki_from_xy(const uint8_t x[P256_COORD_SIZE], const uint8_t y[P256_COORD_SIZE], uint8_t **ret,
                      size_t *ret_size);
/* A public key file's contents: PEM ("-----BEGIN PUBLIC KEY-----") or DER SubjectPublicKeyInfo, the
 * whole buffer, of a P-256 key (p256_pkey_canonical()). Return: 0; -EINVAL if it is neither, or not a
 * valid P-256 point; -ENOMEM. */
int pkey_from_pem_or_der(const uint8_t *buf, size_t size, EVP_PKEY **ret);
/* Verify a DER ECDSA signature over a SHA-256 digest. Return: 1 valid, 0 invalid, -errno. */
int ecdsa_verify_digest(EVP_PKEY *pkey, const uint8_t digest[SHA256_DIGEST_SIZE], const uint8_t *der_sig,
                        size_t der_size);

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY_CTX *, EVP_PKEY_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);
