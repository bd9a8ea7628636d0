/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Agent and platform evidence encoding (see evidence.h). Claim keys: RFC 8392 §3.1 (iss..cti), RFC 8747
 * §3.1 (cnf), RFC 9711 (eat_nonce 10, eat_profile 265); COSE_Key EC2 per RFC 9052 §7 / RFC 9053 §7.1.
 */

#include <string.h>

#include "attest/cwt.h"
#include "attest/evidence.h"
#include "common/cbor-util.h"
#include "common/utf8.h"


int eat_claims_encode(const EatClaims *c, uint8_t **ret, size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *map = NULL;
        cbor_item_t *cnf, *workload;
        int k = 0;

        if (!c->nonce || c->nonce_size < EVIDENCE_NONCE_MIN || c->nonce_size > EVIDENCE_NONCE_MAX || !c->sub ||
            !c->x || !c->y || !c->owner || !c->daemon)
                return -EINVAL;

        map = cbor_util_new_map();
        cnf = cbor_util_new_map();
        workload = cbor_util_new_map();
        if (!map || !cnf || !workload) {
                if (cnf)
                        cbor_decref(&cnf);
                if (workload)
                        cbor_decref(&workload);
                return -ENOMEM;
        }

        k |= cbor_util_map_put_int(cnf, 1, cose_key_p256(c->x, c->y));
        if (c->workload.exe_sha256)
                k |= cbor_util_map_put_text(workload, "exe_sha256", cbor_util_new_bytes(c->workload.exe_sha256, 32));
        if (c->workload.exe_path)
                k |= cbor_util_map_put_text(workload, "exe_path",
                                            utf8_is_valid(c->workload.exe_path, strlen(c->workload.exe_path), NULL) ?
                                                    cbor_util_new_text(c->workload.exe_path) :
                                                    cbor_util_new_bytes(c->workload.exe_path,
                                                                        strlen(c->workload.exe_path)));
        if (c->workload.unit)
                k |= cbor_util_map_put_text(workload, "unit", cbor_util_new_text(c->workload.unit));
        k |= cbor_util_map_put_text(workload, "uid", cbor_util_new_uint(c->workload.uid));
        k |= cbor_util_map_put_text(workload, "pid", cbor_util_new_uint(c->workload.pid));

        k |= cbor_util_map_put_int(map, 10, cbor_util_new_bytes(c->nonce, c->nonce_size));
        k |= cbor_util_map_put_int(map, 6, cbor_util_new_uint(c->iat));
        k |= cbor_util_map_put_int(map, 2, cbor_util_new_text(c->sub));
        k |= cbor_util_map_put_int(map, 8, cnf);
        k |= cbor_util_map_put_int(map, 265, cbor_util_new_text(EAT_PROFILE));
        k |= cbor_util_map_put_text(map, "owner", cbor_util_new_text(c->owner));
        k |= cbor_util_map_put_text(map, "uid", cbor_util_new_uint(c->uid));
        k |= cbor_util_map_put_text(map, "created", cbor_util_new_uint(c->created));
        if (c->not_after)
                k |= cbor_util_map_put_text(map, "not_after", cbor_util_new_uint(c->not_after));
        k |= cbor_util_map_put_text(map, "workload", workload);
        if (c->task_id)
                k |= cbor_util_map_put_text(map, "task_id", cbor_util_new_text(c->task_id));
        if (c->parent_task_id)
                k |= cbor_util_map_put_text(map, "parent_task_id", cbor_util_new_text(c->parent_task_id));
        k |= cbor_util_map_put_text(map, "daemon", cbor_util_new_text(c->daemon));
        if (k != 0)
                return -ENOMEM;
        return cbor_util_encode(map, ret, ret_size);
}

static cbor_item_t *tpm_map(const EvidenceTpm *t, bool platform) {
        cbor_item_t *tpm = cbor_util_new_map(), *pcrs = cbor_util_new_array();
        int k = 0;

        if (!tpm || !pcrs) {
                if (tpm)
                        cbor_decref(&tpm);
                if (pcrs)
                        cbor_decref(&pcrs);
                return NULL;
        }
        for (unsigned i = 0; i < EVIDENCE_PCR_COUNT; i++)
                k |= cbor_util_array_push(pcrs, cbor_util_new_bytes(t->pcrs[i], 32));
        k |= cbor_util_map_put_text(tpm, platform ? "host_pub" : "key_pub", cbor_util_new_bytes(t->key_pub, t->key_pub_size));
        k |= cbor_util_map_put_text(tpm, platform ? "host_certify" : "certify",
                                    cbor_util_new_bytes(t->certify, t->certify_size));
        k |= cbor_util_map_put_text(tpm, platform ? "host_certify_sig" : "certify_sig",
                                    cbor_util_new_bytes(t->certify_sig, t->certify_sig_size));
        k |= cbor_util_map_put_text(tpm, "quote", cbor_util_new_bytes(t->quote, t->quote_size));
        k |= cbor_util_map_put_text(tpm, "quote_sig", cbor_util_new_bytes(t->quote_sig, t->quote_sig_size));
        k |= cbor_util_map_put_text(tpm, "pcrs", pcrs);
        k |= cbor_util_map_put_text(tpm, "ak_pub", cbor_util_new_bytes(t->ak_pub, t->ak_pub_size));
        k |= cbor_util_map_put_text(tpm, "srk_name", cbor_util_new_bytes(t->srk_name, 34));
        if (k != 0) {
                cbor_decref(&tpm);
                return NULL;
        }
        return tpm;
}

static bool tpm_complete(const EvidenceTpm *t) {
        return t->key_pub && t->certify && t->certify_sig && t->quote && t->quote_sig && t->pcrs && t->ak_pub &&
               t->srk_name;
}

int evidence_agent_encode(const uint8_t *eat, size_t eat_size, const EvidenceTpm *t, uint8_t **ret, size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *map = NULL;
        int k = 0;

        if (!eat || eat_size == 0 || !tpm_complete(t))
                return -EINVAL;
        map = cbor_util_new_map();
        if (!map)
                return -ENOMEM;
        k |= cbor_util_map_put_text(map, "v", cbor_util_new_uint(1));
        /* COSE inside CBOR travels as a byte string holding the tagged object (DESIGN §5). */
        k |= cbor_util_map_put_text(map, "eat", cbor_util_new_bytes(eat, eat_size));
        k |= cbor_util_map_put_text(map, "tpm", tpm_map(t, false));
        if (k != 0)
                return -ENOMEM;
        return cbor_util_encode(map, ret, ret_size);
}

int evidence_platform_encode(const EvidenceTpm *t, uint8_t **ret, size_t *ret_size) {
        _cleanup_cbor_ cbor_item_t *map = NULL;
        int k = 0;

        if (!tpm_complete(t))
                return -EINVAL;
        map = cbor_util_new_map();
        if (!map)
                return -ENOMEM;
        k |= cbor_util_map_put_text(map, "v", cbor_util_new_uint(1));
        k |= cbor_util_map_put_text(map, "type", cbor_util_new_text("platform"));
        k |= cbor_util_map_put_text(map, "tpm", tpm_map(t, true));
        if (k != 0)
                return -ENOMEM;
        return cbor_util_encode(map, ret, ret_size);
}
