/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libagentid-verify: revocation lists and rotation statements (DESIGN §5; formats in docs/formats.md
 * §10 and §11; the checks in docs/verifier.md).
 *
 * A verifier may hold the revocation lists of several hosts. Each list is checked (COSE_Sign1 by the
 * host key when the caller has it, the payload decoded strictly by attest/revocation.c), then indexed:
 * three arrays sorted by kid, by SPKI hash and by cti, so that a lookup costs O(log n) even for a list
 * of 100,000 entries. Evidence, tokens, messages and rotation statements then run the check "revoked"
 * last (verdict_check_revoked()) on the keys they actually verified with (for a rotation, the new key
 * it names); a match names the entry.
 *
 * Which list replaces which: the "host" in a payload is only a claim, and any host key can sign any
 * claim, so it never decides alone. A checked list is identified by (host, SHA-256 of the SPKI of the
 * host key that verified it), and replaces only the list of the same identity: a host key can supersede
 * only lists it signed itself, never hide the entries of another host's list by claiming its host-id.
 *
 * Rollback: a list's seq only grows (the daemon increments it with every change), so a caller that
 * remembers the highest seq it has seen passes it as min_seq, and an older list is refused. For the
 * same reason a checked list never replaces one of the same identity with a higher seq (-ESTALE).
 *
 * A list whose signature was not checked (no host key given) can only add refusals: it is kept next to
 * whatever else the verifier holds, never replaces a list and is never compared with one, so a forged
 * one can neither hide an entry nor, by claiming a huge seq, make the genuine list look stale.
 *
 * Every list kept is consulted by every check, so the number of lists is bounded
 * (AGENTID_REVOCATION_SETS_MAX): a caller adding unchecked lists in a loop gets -E2BIG rather than
 * unbounded memory.
 */

#include <stdio.h>
#include <string.h>

#include "attest/cose.h"
#include "attest/revocation.h"
#include "attest/verify-internal.h"
#include "attest/verify.h"
#include "common/crypto-util.h"
#include "common/macro.h"

/* Our public symbols are exported from the shared library; everything else there is hidden. */
#define PUBLIC AGENTID_EXPORT

/* The public limits are those of the format. */
_Static_assert(AGENTID_REVOCATIONS_MAX == REVOCATION_LIST_MAX + 4096U, "revocation list size limit");
_Static_assert(REVOCATION_LIST_MAX <= COSE_LARGE_PAYLOAD_MAX, "revocation list fits the COSE limit");
_Static_assert(AGENTID_TPM_NAME_SIZE == REVOCATION_KID_SIZE, "kid size");
_Static_assert(AGENTID_SHA256_SIZE == REVOCATION_SPKI_DIGEST_SIZE, "SPKI digest size");
_Static_assert(AGENTID_TOKEN_CTI_SIZE == REVOCATION_CTI_SIZE, "cti size");
_Static_assert(AGENTID_ROTATION_MAX == ROTATION_PAYLOAD_MAX, "rotation statement size limit");
/* The refusal below spells the number out. */
_Static_assert(AGENTID_REVOCATION_SETS_MAX == 64U, "revocation set limit");

/* ------------------------------------------------------------------------------------------------ */
/* The lists a verifier holds */

/* One key of an index: points into the list's entries, which never move once indexed. */
typedef struct IndexKey {
        const uint8_t *key;
        size_t entry;
} IndexKey;

typedef struct RevocationSet {
        RevocationList list;
        /* With list.host, a checked list's identity: the host key its signature verified with (SHA-256
         * of its DER SPKI as spki_key_load() re-encodes it). An unchecked list has none and is compared
         * with nothing. */
        bool signature_checked;
        uint8_t host_spki_sha256[SHA256_DIGEST_SIZE];
        /* Sorted by (key, entry), so the first match of a key is its oldest entry. */
        IndexKey *by_kid, *by_spki, *by_cti;
        size_t n_cti;
} RevocationSet;

struct RevocationStore {
        RevocationSet *sets[AGENTID_REVOCATION_SETS_MAX];
        size_t n_sets;
        const RevocationSet *last;      /* the list added last (agentid_verifier_revocations_info()) */
        size_t n_entries;               /* in all sets */
};

static RevocationSet *revocation_set_free(RevocationSet *s) {
        if (!s)
                return NULL;
        revocation_list_done(&s->list);
        free(s->by_kid);
        free(s->by_spki);
        free(s->by_cti);
        return mfree(s);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(RevocationSet *, revocation_set_free);

RevocationStore *revocation_store_free(RevocationStore *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_sets; i++)
                revocation_set_free(s->sets[i]);
        return mfree(s);
}

bool verifier_has_revocations(const AgentidVerifier *v) {
        const RevocationStore *s = verifier_revocations(v);
        return s && s->n_sets > 0;
}

static int index_cmp(const IndexKey *a, const IndexKey *b, size_t size) {
        int c = memcmp(a->key, b->key, size);
        if (c != 0)
                return c;
        return (a->entry > b->entry) - (a->entry < b->entry);
}

static int index_cmp_kid(const void *a, const void *b) {
        return index_cmp(a, b, REVOCATION_KID_SIZE);
}

static int index_cmp_spki(const void *a, const void *b) {
        return index_cmp(a, b, REVOCATION_SPKI_DIGEST_SIZE);
}

static int index_cmp_cti(const void *a, const void *b) {
        return index_cmp(a, b, REVOCATION_CTI_SIZE);
}

static int revocation_set_index(RevocationSet *s) {
        const RevocationList *l = &s->list;
        size_t n = MAX(l->n_entries, (size_t) 1);

        s->by_kid = calloc(n, sizeof(IndexKey));
        s->by_spki = calloc(n, sizeof(IndexKey));
        s->by_cti = calloc(n, sizeof(IndexKey));
        if (!s->by_kid || !s->by_spki || !s->by_cti)
                return -ENOMEM;

        for (size_t i = 0; i < l->n_entries; i++) {
                const RevocationEntry *e = &l->entries[i];

                s->by_kid[i] = (IndexKey) { e->kid, i };
                s->by_spki[i] = (IndexKey) { e->spki_sha256, i };
                if (e->type == REVOCATION_TASK_END && e->has_cti)
                        s->by_cti[s->n_cti++] = (IndexKey) { e->cti, i };
        }
        qsort(s->by_kid, l->n_entries, sizeof(IndexKey), index_cmp_kid);
        qsort(s->by_spki, l->n_entries, sizeof(IndexKey), index_cmp_spki);
        qsort(s->by_cti, s->n_cti, sizeof(IndexKey), index_cmp_cti);
        return 0;
}

/* The oldest entry whose key (size bytes) is key, or NULL: a lower-bound binary search. */
static const RevocationEntry *index_find(const RevocationSet *s, const IndexKey *index, size_t n, const uint8_t *key,
                                         size_t size) {
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (memcmp(index[mid].key, key, size) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo < n && memcmp(index[lo].key, key, size) == 0)
                return &s->list.entries[index[lo].entry];
        return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Adding a list */

/* A failure, saying why when the caller asked. */
static int refused(int r, const char *why, const char **ret_error) {
        if (ret_error)
                *ret_error = why;
        return r;
}

/* Do a and b come from the same source: both checked, with the same host key, for the same host? */
static bool revocation_set_same_source(const RevocationSet *a, const RevocationSet *b) {
        return a->signature_checked && b->signature_checked &&
               memcmp(a->host_spki_sha256, b->host_spki_sha256, sizeof(a->host_spki_sha256)) == 0 &&
               streq(a->list.host, b->list.host);
}

/*
 * Where set goes in s (which may be NULL): the index of the list it replaces, or s->n_sets to keep it in
 * addition. Only a checked list replaces one, and only the list of the same source: an unchecked list
 * could be forged, a list checked with another key could be another host's claiming this host-id, and
 * neither may make an entry disappear or a genuine list look stale. Changes nothing.
 * Return: 0; -ESTALE (a lower seq than the list of the same source); -E2BIG (no room for another list).
 */
static int store_place(const RevocationStore *s, const RevocationSet *set, size_t *ret_index,
                       const char **ret_error) {
        size_t n = s ? s->n_sets : 0;

        for (size_t i = 0; i < n; i++) {
                if (!revocation_set_same_source(s->sets[i], set))
                        continue;
                /* Rollback (DESIGN §5: seq only grows); an equal seq is the same list again. */
                if (set->list.seq < s->sets[i]->list.seq)
                        return refused(-ESTALE, "the list's seq is lower than that of the list of the same host "
                                       "already added with the same host key", ret_error);
                *ret_index = i;
                return 0;
        }
        if (n >= AGENTID_REVOCATION_SETS_MAX)
                return refused(-E2BIG, "the verifier already holds 64 revocation lists", ret_error);
        *ret_index = n;
        return 0;
}

/* Put set at index (store_place()'s), taking it over; the list there before, if any, is freed. */
static int store_put(AgentidVerifier *v, RevocationSet *set, size_t index) {
        RevocationStore **slot = verifier_revocations_slot(v);
        RevocationStore *s = *slot;

        if (index > (s ? s->n_sets : 0) || index >= AGENTID_REVOCATION_SETS_MAX)
                return -EINVAL;         /* not what store_place() said */
        if (!s) {
                s = calloc(1, sizeof(*s));
                if (!s)
                        return -ENOMEM;
                *slot = s;
        }

        if (index < s->n_sets) {
                RevocationSet *old = s->sets[index];
                s->n_entries -= old->list.n_entries;
                revocation_set_free(old);
        } else
                s->n_sets++;
        s->sets[index] = set;
        s->n_entries += set->list.n_entries;
        s->last = set;
        return 0;
}

PUBLIC int agentid_verifier_add_revocations(AgentidVerifier *v, const uint8_t *list, size_t size,
                                            const uint8_t *host_spki_der, size_t host_spki_size,
                                            uint64_t min_seq, const char **ret_error) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *host = NULL;
        _cleanup_(cose_sign1_parsed_done) CoseSign1Parsed p = {};
        _cleanup_(revocation_set_freep) RevocationSet *set = NULL;
        uint8_t host_spki_sha256[SHA256_DIGEST_SIZE];
        const char *why = NULL;
        int r;

        if (!v || (!list && size > 0) || (!host_spki_der && host_spki_size > 0))
                return refused(-EINVAL, "invalid arguments", ret_error);
        if (size > AGENTID_REVOCATIONS_MAX)
                return refused(-EFBIG, "the list is larger than 16 MiB + 4 KiB", ret_error);
        if (host_spki_der) {
                r = spki_key_load(host_spki_der, host_spki_size, &host, host_spki_sha256);
                if (r < 0)
                        return refused(r, "the host key is not a DER SubjectPublicKeyInfo of an EC P-256 key",
                                       ret_error);
        }

        /* The envelope: COSE_Sign1 by the host key (formats.md §3, §10), larger than a message may be. */
        r = cose_sign1_parse_max(list, size, REVOCATION_LIST_MAX, &p, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return refused(-EBADMSG, why ?: "not an agentid COSE_Sign1", ret_error);
        /* Host-key statements carry everything in their payload; label 15 belongs to signed messages. */
        if (p.claims)
                return refused(-EBADMSG, "the protected header carries CWT claims (label 15): a signed message, "
                               "not a revocation list", ret_error);

        /* The signature before the payload is read. The kid is informational: it is the key given here
         * that vouches for the list. */
        if (host) {
                r = cose_sign1_verify_parsed(&p, host);
                if (r == -EKEYREJECTED || r == -EBADMSG)
                        return refused(-EKEYREJECTED, "the list is not signed by the host key", ret_error);
                if (r < 0)
                        return r;
        }

        set = calloc(1, sizeof(*set));
        if (!set)
                return -ENOMEM;
        set->signature_checked = host;
        if (host)
                memcpy(set->host_spki_sha256, host_spki_sha256, sizeof(set->host_spki_sha256));
        r = revocation_list_decode(p.payload, p.payload_size, &set->list, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return refused(-EBADMSG, why ?: "the payload is not a revocation list", ret_error);

        /* Rollback (DESIGN §5: seq only grows): the caller's minimum applies to every list, checked or
         * not; the lists already held only to one from the same source (store_place()). */
        if (set->list.seq < min_seq)
                return refused(-ESTALE, "the list's seq is lower than the minimum required (an older list)",
                               ret_error);
        size_t index;
        r = store_place(verifier_revocations(v), set, &index, ret_error);
        if (r < 0)
                return r;

        r = revocation_set_index(set);
        if (r < 0)
                return r;
        r = store_put(v, set, index);
        if (r < 0)
                return r;
        TAKE_PTR(set);
        return 0;
}

PUBLIC const char *agentid_verifier_revocations_info(const AgentidVerifier *v, uint64_t *ret_seq,
                                                     uint64_t *ret_issued, size_t *ret_n_entries) {
        const RevocationStore *s = verifier_revocations(v);

        if (!s || !s->last)
                return NULL;
        if (ret_seq)
                *ret_seq = s->last->list.seq;
        if (ret_issued)
                *ret_issued = s->last->list.issued;
        if (ret_n_entries)
                *ret_n_entries = s->last->list.n_entries;
        return s->last->list.host;
}

/* ------------------------------------------------------------------------------------------------ */
/* The check "revoked" */

void revoked_query_add_kid(RevokedQuery *q, const uint8_t *kid, const char *what, int index) {
        if (!q || !kid || q->n_kids >= REVOKED_KIDS_MAX)
                return;
        q->kids[q->n_kids].kid = kid;
        q->kids[q->n_kids].what = what;
        q->kids[q->n_kids].index = index;
        q->n_kids++;
}

static void _printf_(4, 5) record(AgentidVerdict *d, AgentidReason reason, bool ok, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        verdict_record_v(d, reason, ok, fmt, ap);
        va_end(ap);
}

/* What matched and the entry it matched: "<what> <hex> is revoked: <type> "<name>" at <time>, reason
 * "<reason>" (list of host <host>, seq <seq>)", the list marked when its signature was not checked (its
 * host and seq are then only what it claims). */
static void fail_entry(AgentidVerdict *d, const char *what, int index, const uint8_t *key, size_t key_size,
                       const RevocationSet *set, const RevocationEntry *e) {
        char idx[24] = "";

        if (index >= 0)
                snprintf(idx, sizeof(idx), " %d", index);
        record(d, AGENTID_REASON_REVOKED, false, "%s%s %s is revoked: %s \"%.40s\" at %llu, reason \"%.60s\" "
               "(list of host %s, seq %llu%s)", what, idx, detail_hex(key, key_size).s,
               revocation_type_to_string(e->type), e->name, (unsigned long long) e->time, e->reason, set->list.host,
               (unsigned long long) set->list.seq, set->signature_checked ? "" : ", signature not checked");
}

void verdict_check_revoked(const AgentidVerifier *v, AgentidVerdict *d, const RevokedQuery *q, const char *why) {
        const RevocationStore *s = verifier_revocations(v);

        if (!s || s->n_sets == 0)
                return;
        if (!q || (!q->spki_sha256 && !q->spki_sha256_2 && q->n_kids == 0 && !q->cti)) {
                record(d, AGENTID_REASON_REVOKED, false, "not checked: %s", why ?: "no key known");
                return;
        }

        /* Every key of the query against every list; the report names the first match, in the order
         * of the query (the key verified with first). */
        const uint8_t *spkis[] = { q->spki_sha256, q->spki_sha256_2 };
        const char *spki_whats[] = { q->spki_what, q->spki_what_2 };
        size_t n_spkis = 0;
        for (size_t i = 0; i < ELEMENTSOF(spkis); i++) {
                if (!spkis[i])
                        continue;
                n_spkis++;
                for (size_t j = 0; j < s->n_sets; j++) {
                        const RevocationSet *set = s->sets[j];
                        const RevocationEntry *e = index_find(set, set->by_spki, set->list.n_entries, spkis[i],
                                                              REVOCATION_SPKI_DIGEST_SIZE);
                        if (e) {
                                char what[96];
                                snprintf(what, sizeof(what), "%s (SPKI SHA-256)", spki_whats[i] ?: "the key");
                                fail_entry(d, what, -1, spkis[i], REVOCATION_SPKI_DIGEST_SIZE, set, e);
                                return;
                        }
                }
        }
        for (size_t i = 0; i < q->n_kids; i++)
                for (size_t j = 0; j < s->n_sets; j++) {
                        const RevocationSet *set = s->sets[j];
                        const RevocationEntry *e = index_find(set, set->by_kid, set->list.n_entries, q->kids[i].kid,
                                                              REVOCATION_KID_SIZE);
                        if (e) {
                                fail_entry(d, q->kids[i].what, q->kids[i].index, q->kids[i].kid, REVOCATION_KID_SIZE,
                                           set, e);
                                return;
                        }
                }
        if (q->cti)
                for (size_t j = 0; j < s->n_sets; j++) {
                        const RevocationSet *set = s->sets[j];
                        const RevocationEntry *e = index_find(set, set->by_cti, set->n_cti, q->cti,
                                                              REVOCATION_CTI_SIZE);
                        if (e) {
                                fail_entry(d, "the task credential's cti", -1, q->cti, REVOCATION_CTI_SIZE, set, e);
                                return;
                        }
                }

        record(d, AGENTID_REASON_REVOKED, true, "not revoked: %s%zu kid%s%s checked against %zu list%s (%zu entries)",
               n_spkis == 2 ? "2 SPKI SHA-256s and " : n_spkis == 1 ? "the SPKI SHA-256 and " : "", q->n_kids,
               q->n_kids == 1 ? "" : "s",
               q->cti ? " and a task credential's cti" : "", s->n_sets, s->n_sets == 1 ? "" : "s", s->n_entries);
}

/* ------------------------------------------------------------------------------------------------ */
/* Rotation statements */

static const AgentidReason rotation_checks[] = {
        AGENTID_REASON_ROTATION_FORMAT,
        AGENTID_REASON_ROTATION_OLD_SIGNATURE,
        AGENTID_REASON_ROTATION_HOST_SIGNATURE,
};

/* What a valid rotation verdict hands out; the strings point into parsed. */
typedef struct RotationOutput {
        AgentidRotation rotation;
        RotationStatementParsed parsed;
} RotationOutput;

static void rotation_output_free(void *p) {
        RotationOutput *o = p;
        if (!o)
                return;
        rotation_statement_parsed_done(&o->parsed);
        free(o);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(RotationOutput *, rotation_output_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentidVerdict *, agentid_verdict_free);

/* The statement's own consistency, beyond the field types revocation.c checked: uri is the agent URI of
 * the key named, and the new key is not the old one. Return: NULL, or why not. */
static const char *rotation_consistent(const RotationStatementParsed *s,
                                       const uint8_t old_spki_sha256[SHA256_DIGEST_SIZE]) {
        size_t n = strlen(s->uri), name = strlen(s->name);

        if (!agent_uri_is_valid(s->uri, n))
                return "\"uri\" is not agentid://<32 hex digits>/<key name>";
        /* DESIGN §2: agentid://<host-id>/<key name>; Rotate keeps the name. */
        if (n <= name || s->uri[n - name - 1] != '/' || memcmp(s->uri + n - name, s->name, name) != 0)
                return "\"uri\" does not name the key \"name\"";
        if (memcmp(s->old_kid, s->new_kid, REVOCATION_KID_SIZE) == 0)
                return "\"new_kid\" equals \"old_kid\"";
        if (memcmp(s->new_spki_sha256, old_spki_sha256, SHA256_DIGEST_SIZE) == 0)
                return "\"new_spki_sha256\" is the old key's";
        return NULL;
}

/*
 * The check "revoked" of a rotation verdict (a no-op without lists), on the new key only: a peer must not
 * move its trust to a successor that has been revoked since (destroyed, or rotated out in turn). The old
 * key is left out on purpose: the rotation itself puts it on the list (type "rotate"), so matching it
 * would refuse every rotation a current list knows of. s is NULL when the statement is not known to be
 * the signers' (malformed, or a signature did not verify): then "not checked: " why.
 */
static void rotation_check_revoked(const AgentidVerifier *v, AgentidVerdict *d, const RotationStatementParsed *s,
                                   const char *why) {
        RevokedQuery q = {};

        if (!s) {
                verdict_check_revoked(v, d, NULL, why);
                return;
        }
        q.spki_sha256 = s->new_spki_sha256;
        q.spki_what = "the new key";
        revoked_query_add_kid(&q, s->new_kid, "the new key's kid", -1);
        verdict_check_revoked(v, d, &q, NULL);
}

PUBLIC int agentid_verify_rotation(const AgentidVerifier *v, const uint8_t *statement, size_t size,
                                   const uint8_t *old_spki_der, size_t old_spki_size,
                                   const uint8_t *host_spki_der, size_t host_spki_size, AgentidVerdict **ret) {
        _cleanup_(agentid_verdict_freep) AgentidVerdict *d = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *old_key = NULL, *host_key = NULL;
        _cleanup_(rotation_output_freep) RotationOutput *o = NULL;
        _cleanup_free_ uint8_t *payload = NULL;
        uint8_t old_sha256[SHA256_DIGEST_SIZE], host_sha256[SHA256_DIGEST_SIZE];
        size_t payload_size = 0, failed = 0;
        const char *why = NULL;
        bool format_ok = false, signed_ok = false;
        int r;

        if (!v || (!statement && size > 0) || !old_spki_der || !host_spki_der || !ret)
                return -EINVAL;
        r = spki_key_load(old_spki_der, old_spki_size, &old_key, old_sha256);
        if (r < 0)
                return r;
        r = spki_key_load(host_spki_der, host_spki_size, &host_key, host_sha256);
        if (r < 0)
                return r;

        /* With lists, "revoked" comes last, as for every verdict (rotation_check_revoked()). */
        d = verdict_new(v, VERDICT_ROTATION, rotation_checks, ELEMENTSOF(rotation_checks),
                        "not checked: statement malformed");
        o = calloc(1, sizeof(*o));
        if (!d || !o)
                return -ENOMEM;

        /* rotation_format: the COSE_Sign profile with exactly two signers (RFC 9052 §4.1), then the
         * statement's fields. Parsing is not trusting: nothing here is handed out unless both
         * signatures verify. */
        if (size > AGENTID_ROTATION_MAX)
                record(d, AGENTID_REASON_ROTATION_FORMAT, false, "%zu bytes, more than %u", size, AGENTID_ROTATION_MAX);
        else {
                r = cose_sign_parse(statement, size, 2, &payload, &payload_size, &why);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        record(d, AGENTID_REASON_ROTATION_FORMAT, false, "not an agentid COSE_Sign with two signers: %s",
                               why ?: "malformed");
                else {
                        r = rotation_statement_decode(payload, payload_size, &o->parsed, &why);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0)
                                record(d, AGENTID_REASON_ROTATION_FORMAT, false, "not a rotation statement: %s",
                                       why ?: "malformed");
                        else if ((why = rotation_consistent(&o->parsed, old_sha256)))
                                record(d, AGENTID_REASON_ROTATION_FORMAT, false, "%s", why);
                        else {
                                format_ok = true;
                                record(d, AGENTID_REASON_ROTATION_FORMAT, true,
                                       "COSE_Sign (tag 98, deterministic), two ES256 signers; rotate \"%.64s\" at %llu",
                                       o->parsed.name, (unsigned long long) o->parsed.time);
                        }
                }
        }

        if (format_ok) {
                EVP_PKEY *keys[] = { old_key, host_key };

                /* In order: the old key's signature first, then the host key's (formats.md §11). */
                r = cose_sign_check(statement, size, keys, ELEMENTSOF(keys), &failed, NULL, NULL);
                if (r == 0) {
                        signed_ok = true;
                        record(d, AGENTID_REASON_ROTATION_OLD_SIGNATURE, true, "ES256 by the old key (SPKI SHA-256 %s)",
                               detail_hex(old_sha256, SHA256_DIGEST_SIZE).s);
                        record(d, AGENTID_REASON_ROTATION_HOST_SIGNATURE, true, "ES256 by the host key (SPKI SHA-256 %s)",
                               detail_hex(host_sha256, SHA256_DIGEST_SIZE).s);
                } else if (r == -EKEYREJECTED && failed == 0) {
                        record(d, AGENTID_REASON_ROTATION_OLD_SIGNATURE, false,
                               "the first signature does not verify with the old key");
                        record(d, AGENTID_REASON_ROTATION_HOST_SIGNATURE, false,
                               "not checked: the old key's signature did not verify");
                } else if (r == -EKEYREJECTED) {
                        record(d, AGENTID_REASON_ROTATION_OLD_SIGNATURE, true, "ES256 by the old key (SPKI SHA-256 %s)",
                               detail_hex(old_sha256, SHA256_DIGEST_SIZE).s);
                        record(d, AGENTID_REASON_ROTATION_HOST_SIGNATURE, false,
                               "the second signature does not verify with the host key");
                } else if (r == -EBADMSG)
                        return -EIO;    /* cannot happen: cose_sign_parse() accepted the same bytes */
                else
                        return r;
        } else {
                record(d, AGENTID_REASON_ROTATION_OLD_SIGNATURE, false, "not checked: statement malformed");
                record(d, AGENTID_REASON_ROTATION_HOST_SIGNATURE, false, "not checked: statement malformed");
        }

        rotation_check_revoked(v, d, signed_ok ? &o->parsed : NULL,
                               format_ok ? "signatures not verified" : "statement malformed");

        verdict_conclude(d);
        if (agentid_verdict_is_valid(d)) {
                AgentidRotation *k = &o->rotation;
                *k = (AgentidRotation) {
                        .name = o->parsed.name,
                        .uri = o->parsed.uri,
                        .reason = o->parsed.reason,
                        .time = o->parsed.time,
                };
                memcpy(k->old_kid, o->parsed.old_kid, sizeof(k->old_kid));
                memcpy(k->new_kid, o->parsed.new_kid, sizeof(k->new_kid));
                memcpy(k->new_spki_sha256, o->parsed.new_spki_sha256, sizeof(k->new_spki_sha256));
                verdict_set_extra(d, TAKE_PTR(o), rotation_output_free);
        }

        *ret = TAKE_PTR(d);
        return 0;
}

PUBLIC const AgentidRotation *agentid_verdict_get_rotation(const AgentidVerdict *d) {
        RotationOutput *o = verdict_get_extra(d, VERDICT_ROTATION);
        return o ? &o->rotation : NULL;
}
