/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Policy-as-code (see policy.h and docs/policy.md).
 *
 * Parsing turns the JSON document into an array of compiled rules; jansson's tree is dropped before
 * policy_parse() returns. Every glob is compiled once: the common shapes (exact, "*", "prefix*",
 * "*suffix", "*infix*") become byte comparisons, anything else a small op program matched without
 * backtracking over more than the last '*'. Globs have the semantics of fnmatch(pattern, s, 0) in the
 * C locale (the daemon's): bytes, '*' and '?' also match '/', '\' escapes. We do not call fnmatch() at
 * decision time: glibc's costs 25-50 ns per pattern here in the C locale and five times that in a
 * UTF-8 one, and its result would then depend on the locale; the unit tests compare the compiled
 * matcher with fnmatch() on random patterns instead.
 *
 * Rules are indexed per action: rules whose "keys" are all literal sit in a hash table under each
 * key name, the others in a "wildcard" list, each with the first and last bytes its key glob fixes as
 * a quick filter; policy_decide() merges the two lists in rule order, so it looks at the same rules as a
 * linear scan would, minus those that cannot match.
 *
 * Rate limits are token buckets per (rule, key name), kept in the Policy: a reload restarts them.
 */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/crypto-util.h"
#include "common/hashmap.h"
#include "common/hexutil.h"
#include "governance/policy.h"

/* Buckets per rule. A bucket is only created for a request that passed the key check, so the number
 * of live buckets is bounded by the keys a caller may use, except for "create", where the name is
 * the caller's choice; the bound keeps that case from growing without limit. */
#define RATE_BUCKETS_MAX 4096U
#define RATE_LIMIT_MAX 1000000U
#define RATE_INTERVAL_MAX 86400U
#define USEC_PER_SEC 1000000ULL

#define UID_MAX_VALID 4294967294LL /* (uid_t) -1 is "no uid" */

#define REASON_NO_RULE "no rule matches"
#define REASON_DENY_RULE "denied by rule"
#define REASON_NO_TASK "the rule requires a task_id"
#define REASON_RATE "the rule's rate limit is exhausted"

static const char *const action_table[_POLICY_ACTION_MAX] = {
        [POLICY_ACTION_CREATE] = "create",
        [POLICY_ACTION_DESTROY] = "destroy",
        [POLICY_ACTION_ROTATE] = "rotate",
        [POLICY_ACTION_SIGN] = "sign",
        [POLICY_ACTION_SIGN_MESSAGE] = "sign_message",
        [POLICY_ACTION_ISSUE_TOKEN] = "issue_token",
        [POLICY_ACTION_ATTEST] = "attest",
        [POLICY_ACTION_START_TASK] = "start_task",
};

static const char *const effect_table[] = {
        [POLICY_ALLOW] = "allow",
        [POLICY_DENY] = "deny",
        [POLICY_CONFIRM] = "confirm",
};

const char *policy_action_to_string(PolicyAction a) {
        if ((unsigned) a >= _POLICY_ACTION_MAX)
                return NULL;
        return action_table[a];
}

int policy_action_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (unsigned i = 0; i < _POLICY_ACTION_MAX; i++)
                if (streq(action_table[i], s))
                        return (int) i;
        return -EINVAL;
}

const char *policy_effect_to_string(PolicyEffect e) {
        if ((unsigned) e >= ELEMENTSOF(effect_table))
                return NULL;
        return effect_table[e];
}

/* ---- globs ---- */

typedef enum GlobKind {
        GLOB_EXACT,
        GLOB_ANY,
        GLOB_PREFIX,
        GLOB_SUFFIX,
        GLOB_INFIX,
        GLOB_GENERAL,
} GlobKind;

/* Ops of a general glob: a byte value (0..255) matches itself. */
#define OP_ANY 0x100U
#define OP_STAR 0x101U
#define OP_SET 0x200U /* + index into Glob.sets */

typedef struct ByteSet {
        uint64_t bits[4];
} ByteSet;

typedef struct Glob {
        GlobKind kind;
        /* EXACT, PREFIX, SUFFIX, INFIX: the literal part, unescaped and NUL-terminated. */
        char *literal;
        size_t literal_len;
        /* GENERAL */
        uint16_t *ops;
        size_t n_ops;
        ByteSet *sets;
        size_t min_len; /* bytes a match needs: ops other than '*' */
        bool has_star;
        size_t head; /* index of the first '*' */
        size_t tail; /* index after the last '*' */
} Glob;

static void glob_done(Glob *g) {
        free(g->literal);
        free(g->ops);
        free(g->sets);
        *g = (Glob) {};
}

static void byte_set_add(ByteSet *s, uint8_t c) {
        s->bits[c >> 6] |= 1ULL << (c & 63);
}

static bool byte_set_has(const ByteSet *s, uint8_t c) {
        return (s->bits[c >> 6] >> (c & 63)) & 1;
}

/* The POSIX classes as the C locale defines them (ASCII only, like fnmatch() there). */
static bool class_has(const char *name, uint8_t c) {
        bool upper = c >= 'A' && c <= 'Z', lower = c >= 'a' && c <= 'z', digit = c >= '0' && c <= '9';
        bool graph = c >= 0x21 && c <= 0x7e;

        if (streq(name, "alnum"))
                return upper || lower || digit;
        if (streq(name, "alpha"))
                return upper || lower;
        if (streq(name, "blank"))
                return c == ' ' || c == '\t';
        if (streq(name, "cntrl"))
                return c < 0x20 || c == 0x7f;
        if (streq(name, "digit"))
                return digit;
        if (streq(name, "graph"))
                return graph;
        if (streq(name, "lower"))
                return lower;
        if (streq(name, "print"))
                return graph || c == ' ';
        if (streq(name, "punct"))
                return graph && !upper && !lower && !digit;
        if (streq(name, "space"))
                return c == ' ' || (c >= '\t' && c <= '\r');
        if (streq(name, "upper"))
                return upper;
        if (streq(name, "xdigit"))
                return digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        return false;
}

static bool class_is_known(const char *name) {
        static const char *const classes[] = {
                "alnum", "alpha", "blank", "cntrl", "digit", "graph",
                "lower", "print", "punct", "space", "upper", "xdigit",
        };
        for (size_t i = 0; i < ELEMENTSOF(classes); i++)
                if (streq(classes[i], name))
                        return true;
        return false;
}

/*
 * One bracket expression starting at p[*i] == '['. What fnmatch() would treat in a way that depends
 * on the locale or the environment is refused rather than guessed: non-ASCII members, "[^" (glibc
 * reads it as "[!" unless POSIXLY_CORRECT is set), equivalence classes and collating symbols, and
 * reversed ranges (which match nothing). An unterminated '[' is refused too, although fnmatch()
 * would match it literally: it is almost certainly a typo.
 */
static int parse_bracket(const char *p, size_t len, size_t *i, ByteSet *ret, const char **ret_why) {
        ByteSet set = {};
        bool negate = false, first = true;
        size_t k = *i + 1;

        if (k < len && p[k] == '!') {
                negate = true;
                k++;
        } else if (k < len && p[k] == '^') {
                *ret_why = "\"[^\" is ambiguous, write \"[!\" to negate";
                return -EINVAL;
        }

        for (;;) {
                uint8_t lo, hi;

                if (k >= len) {
                        *ret_why = "unterminated bracket expression";
                        return -EINVAL;
                }
                if (p[k] == ']' && !first) {
                        k++;
                        break;
                }
                first = false;

                if (p[k] == '[' && k + 1 < len && p[k + 1] == ':') {
                        const char *end = memmem(p + k + 2, len - k - 2, ":]", 2);
                        char name[16];
                        size_t n;

                        if (!end) {
                                *ret_why = "unterminated character class";
                                return -EINVAL;
                        }
                        n = (size_t) (end - (p + k + 2));
                        if (n >= sizeof(name)) {
                                *ret_why = "unknown character class";
                                return -EINVAL;
                        }
                        memcpy(name, p + k + 2, n);
                        name[n] = 0;
                        if (!class_is_known(name)) {
                                *ret_why = "unknown character class";
                                return -EINVAL;
                        }
                        for (unsigned c = 0; c < 128; c++)
                                if (class_has(name, (uint8_t) c))
                                        byte_set_add(&set, (uint8_t) c);
                        k = (size_t) (end - p) + 2;
                        if (k + 1 < len && p[k] == '-' && p[k + 1] != ']') {
                                *ret_why = "a range cannot start at a character class";
                                return -EINVAL;
                        }
                        continue;
                }
                if (p[k] == '[' && k + 1 < len && (p[k + 1] == '=' || p[k + 1] == '.')) {
                        *ret_why = "equivalence classes and collating symbols are not supported";
                        return -EINVAL;
                }

                if (p[k] == '\\') {
                        if (++k >= len) {
                                *ret_why = "unterminated bracket expression";
                                return -EINVAL;
                        }
                }
                lo = hi = (uint8_t) p[k++];

                /* A '-' right before the closing ']' is a member, not a range. */
                if (k + 1 < len && p[k] == '-' && p[k + 1] != ']') {
                        k++;
                        if (p[k] == '[' && k + 1 < len && p[k + 1] && strchr(":=.", p[k + 1])) {
                                *ret_why = "a range cannot end at a character class";
                                return -EINVAL;
                        }
                        if (p[k] == '\\' && ++k >= len) {
                                *ret_why = "unterminated bracket expression";
                                return -EINVAL;
                        }
                        hi = (uint8_t) p[k++];
                        if (hi < lo) {
                                *ret_why = "reversed range";
                                return -EINVAL;
                        }
                }
                if (lo >= 0x80 || hi >= 0x80) {
                        *ret_why = "non-ASCII character in a bracket expression";
                        return -EINVAL;
                }
                for (unsigned c = lo; c <= hi; c++)
                        byte_set_add(&set, (uint8_t) c);
        }

        if (negate)
                for (size_t w = 0; w < ELEMENTSOF(set.bits); w++)
                        set.bits[w] = ~set.bits[w];
        *ret = set;
        *i = k;
        return 0;
}

static int glob_compile(const char *pattern, size_t len, Glob *ret, const char **ret_why) {
        _cleanup_free_ uint16_t *ops = NULL;
        _cleanup_free_ ByteSet *sets = NULL;
        size_t n_ops = 0, n_sets = 0, lead = 0, trail = 0;
        bool literal_middle = true;
        int r;

        ops = malloc(len * sizeof(uint16_t));
        sets = malloc((len / 2 + 1) * sizeof(ByteSet));
        if (!ops || !sets)
                return -ENOMEM;

        for (size_t i = 0; i < len;)
                switch (pattern[i]) {
                case '*':
                        /* "**" is "*". */
                        if (n_ops == 0 || ops[n_ops - 1] != OP_STAR)
                                ops[n_ops++] = OP_STAR;
                        i++;
                        break;
                case '?':
                        ops[n_ops++] = OP_ANY;
                        i++;
                        break;
                case '\\':
                        /* fnmatch() never matches a pattern that ends in an escape. */
                        if (i + 1 >= len) {
                                *ret_why = "pattern ends with a backslash";
                                return -EINVAL;
                        }
                        ops[n_ops++] = (uint8_t) pattern[i + 1];
                        i += 2;
                        break;
                case '[':
                        r = parse_bracket(pattern, len, &i, &sets[n_sets], ret_why);
                        if (r < 0)
                                return r;
                        ops[n_ops++] = (uint16_t) (OP_SET + n_sets++);
                        break;
                default:
                        ops[n_ops++] = (uint8_t) pattern[i++];
                }

        while (lead < n_ops && ops[lead] == OP_STAR)
                lead++;
        while (trail < n_ops - lead && ops[n_ops - 1 - trail] == OP_STAR)
                trail++;
        for (size_t i = lead; i < n_ops - trail; i++)
                if (ops[i] > 0xff)
                        literal_middle = false;

        Glob g = {};
        if (literal_middle && lead + trail == n_ops)
                g.kind = GLOB_ANY;
        else if (literal_middle) {
                g.kind = lead == 0 ? (trail == 0 ? GLOB_EXACT : GLOB_PREFIX) :
                                     (trail == 0 ? GLOB_SUFFIX : GLOB_INFIX);
                g.literal_len = n_ops - lead - trail;
                g.literal = malloc(g.literal_len + 1);
                if (!g.literal)
                        return -ENOMEM;
                for (size_t i = 0; i < g.literal_len; i++)
                        g.literal[i] = (char) ops[lead + i];
                g.literal[g.literal_len] = 0;
        } else {
                g.kind = GLOB_GENERAL;
                g.head = g.tail = n_ops;
                for (size_t i = 0; i < n_ops; i++) {
                        if (ops[i] != OP_STAR) {
                                g.min_len++;
                                continue;
                        }
                        if (!g.has_star)
                                g.head = i;
                        g.has_star = true;
                        g.tail = i + 1;
                }
                g.n_ops = n_ops;
                g.ops = TAKE_PTR(ops);
                if (n_sets > 0)
                        g.sets = TAKE_PTR(sets);
        }
        *ret = g;
        return 0;
}

static bool op_match(const Glob *g, unsigned op, uint8_t c) {
        if (op <= 0xff)
                return op == c;
        if (op == OP_ANY)
                return true;
        return byte_set_has(&g->sets[op - OP_SET], c);
}

/* ops[from..to) against s[0..to-from): each op other than '*' takes exactly one byte. */
static bool ops_match_fixed(const Glob *g, size_t from, size_t to, const uint8_t *s) {
        for (size_t k = from; k < to; k++)
                if (!op_match(g, g->ops[k], s[k - from]))
                        return false;
        return true;
}

/* The ops between the first '*' and the last (both included) against s[head..n-tail_len). Only the
 * last '*' seen ever needs to take more bytes, since whatever an earlier one could absorb a later one
 * can absorb as well; so one restart point suffices and the cost is O(bytes · ops). */
static bool glob_middle_match(const Glob *g, const uint8_t *s, size_t n) {
        size_t p = g->head, i = g->head, end = n - (g->n_ops - g->tail), star_p = SIZE_MAX, star_i = 0;

        if (g->head + 1 == g->tail)
                return true; /* one '*' takes whatever is between */

        while (i < end) {
                if (p < g->tail) {
                        unsigned op = g->ops[p];

                        if (op == OP_STAR) {
                                star_p = ++p;
                                star_i = i;
                                continue;
                        }
                        if (op_match(g, op, s[i])) {
                                p++;
                                i++;
                                continue;
                        }
                }
                if (star_p == SIZE_MAX)
                        return false;
                p = star_p;
                i = ++star_i;
        }
        while (p < g->tail && g->ops[p] == OP_STAR)
                p++;
        return p == g->tail;
}

static bool glob_general_match(const Glob *g, const uint8_t *s, size_t n) {
        size_t tail_len = g->n_ops - g->tail;

        if (!g->has_star)
                return n == g->min_len && ops_match_fixed(g, 0, g->n_ops, s);
        if (n < g->min_len)
                return false;

        /* The ops before the first '*' are anchored at the start and those after the last one at the
         * end, so both are plain comparisons; the end first, since "*-suffix" shapes differ there. */
        return ops_match_fixed(g, g->tail, g->n_ops, s + n - tail_len) && ops_match_fixed(g, 0, g->head, s) &&
               glob_middle_match(g, s, n);
}

static bool glob_match(const Glob *g, const char *s, size_t n) {
        switch (g->kind) {
        case GLOB_EXACT:
                return n == g->literal_len && memcmp(s, g->literal, n) == 0;
        case GLOB_ANY:
                return true;
        case GLOB_PREFIX:
                return n >= g->literal_len && memcmp(s, g->literal, g->literal_len) == 0;
        case GLOB_SUFFIX:
                return n >= g->literal_len && memcmp(s + n - g->literal_len, g->literal, g->literal_len) == 0;
        case GLOB_INFIX:
                return memmem(s, n, g->literal, g->literal_len) != NULL;
        case GLOB_GENERAL:
                return glob_general_match(g, (const uint8_t *) s, n);
        }
        return false;
}

typedef struct GlobList {
        Glob *globs;
        size_t n; /* 0: the rule does not have the field */
} GlobList;

static void glob_list_done(GlobList *l) {
        for (size_t i = 0; i < l->n; i++)
                glob_done(&l->globs[i]);
        free(l->globs);
        *l = (GlobList) {};
}

static bool glob_list_match(const GlobList *l, const char *s, size_t n) {
        for (size_t i = 0; i < l->n; i++)
                if (glob_match(&l->globs[i], s, n))
                        return true;
        return false;
}

/* ---- rules and rate buckets ---- */

typedef struct Bucket {
        char *key;
        /* One token is interval_usec units and each µs adds rate_limit units, so refilling is exact
         * integer arithmetic; a full bucket holds rate_limit·interval_usec units (< 2^57). */
        uint64_t credit;
        uint64_t last_usec;
        struct Bucket *newer, *older;
} Bucket;

typedef struct RateTable {
        Hashmap *by_key; /* key name → Bucket, borrowing Bucket.key */
        Bucket *newest, *oldest;
        size_t n;
} RateTable;

typedef struct Rule {
        /* What a decision reads first, together: a rule with no matcher besides "actions" and "keys"
         * is then decided from one cache line. */
        uint32_t actions; /* bit per PolicyAction; without "actions": all but create, destroy, rotate */
        bool has_more;    /* a matcher other than "actions" and "keys" */
        GlobList keys;
        char *name;
        PolicyEffect effect;

        GlobList units, audiences, peers, tasks, scopes;
        uint32_t *uids, *gids;
        size_t n_uids, n_gids;
        uint8_t (*exes)[SHA256_DIGEST_SIZE];
        size_t n_exes;
        bool no_login_sessions;
        uint64_t max_token_ttl;
        uint32_t rate_limit; /* 0: none */
        uint32_t rate_interval;
        bool require_task;
        RateTable rate;
} Rule;

/* The rules under one literal key name, ascending. */
typedef struct KeyEntry {
        uint32_t *rules;
        size_t n, allocated;
} KeyEntry;

/*
 * A rule of the wildcard list with a cheap necessary condition in front of it. When the rule has one
 * key glob, head and tail hold the bytes that glob fixes among the first and the last 8 bytes of any
 * name it matches: its literal prefix and suffix, or the literal ops before its first '*' and after
 * its last one; min_len and max_len bound the length of such a name. A name whose first or last 8
 * bytes (zero-padded) disagree, or whose length is out of bounds, cannot match, so a scan over many
 * glob rules mostly touches this array alone, not the rules.
 */
typedef enum KeyCheck {
        KEYS_CHECK,  /* match the rule's "keys" */
        KEYS_MIDDLE, /* the filter proved both ends of the only glob: match what is between */
        KEYS_DONE,   /* the filter (or the hash table) proved the match */
} KeyCheck;

typedef struct Candidate {
        uint32_t rule;
        KeyCheck keys; /* what is left to check after the filter passed */
        uint32_t min_len, max_len; /* bytes of a matching name */
        uint64_t head, head_mask; /* a mask of 0: no condition */
        uint64_t tail, tail_mask;
} Candidate;

typedef struct ActionIndex {
        Hashmap *by_key; /* literal key name → KeyEntry, borrowing the rule's Glob.literal */
        Candidate *wildcard; /* rules without "keys" or with a glob among them, ascending */
        size_t n_wildcard;
} ActionIndex;

struct Policy {
        Rule *rules;
        size_t n_rules;
        ActionIndex index[_POLICY_ACTION_MAX];
        uint8_t digest[SHA256_DIGEST_SIZE];
        unsigned needs;
};

static void rate_table_done(RateTable *t) {
        for (Bucket *b = t->newest, *next; b; b = next) {
                next = b->older;
                free(b->key);
                free(b);
        }
        hashmap_free(t->by_key);
        *t = (RateTable) {};
}

static void rule_done(Rule *r) {
        free(r->name);
        glob_list_done(&r->keys);
        glob_list_done(&r->units);
        glob_list_done(&r->audiences);
        glob_list_done(&r->peers);
        glob_list_done(&r->tasks);
        glob_list_done(&r->scopes);
        free(r->uids);
        free(r->gids);
        free(r->exes);
        rate_table_done(&r->rate);
}

Policy *policy_free(Policy *p) {
        if (!p)
                return NULL;
        for (size_t a = 0; a < _POLICY_ACTION_MAX; a++) {
                ActionIndex *ix = &p->index[a];
                size_t state = 0;
                void *v;

                while (hashmap_iterate(ix->by_key, &state, &v)) {
                        KeyEntry *e = v;
                        free(e->rules);
                        free(e);
                }
                hashmap_free(ix->by_key);
                free(ix->wildcard);
        }
        for (size_t i = 0; i < p->n_rules; i++)
                rule_done(&p->rules[i]);
        free(p->rules);
        return mfree(p);
}

/* ---- parsing ---- */

#define PATH_MAX_LEN 160

_printf_(3, 4) static int fail(char *error, const char *path, const char *fmt, ...) {
        char msg[POLICY_ERROR_MAX];
        va_list ap;

        if (!error)
                return -EINVAL;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(error, POLICY_ERROR_MAX, "%s: %s", path, msg);
        return -EINVAL;
}

_printf_(2, 3) static void set_error(char *error, const char *fmt, ...) {
        va_list ap;

        if (!error)
                return;
        va_start(ap, fmt);
        vsnprintf(error, POLICY_ERROR_MAX, fmt, ap);
        va_end(ap);
}

/* A member name as it may appear in a path: printable ASCII, cut short. */
static void path_append_member(char *buf, size_t size, const char *parent, const char *name) {
        char clean[65];
        size_t n = 0;

        for (; name[n] && n < sizeof(clean) - 1; n++)
                clean[n] = (name[n] > 0x20 && name[n] < 0x7f) ? name[n] : '?';
        clean[n] = 0;
        snprintf(buf, size, "%s.%s%s", parent, clean, name[n] ? "..." : "");
}

static int check_fields(json_t *obj, const char *path, const char *const *known, size_t n_known, char *error) {
        const char *name;
        json_t *v;

        json_object_foreach(obj, name, v) {
                bool found = false;
                for (size_t i = 0; i < n_known && !found; i++)
                        found = streq(known[i], name);
                if (!found) {
                        char p[PATH_MAX_LEN];
                        path_append_member(p, sizeof(p), path, name);
                        return fail(error, p, "unknown field");
                }
        }
        return 0;
}

/* UTF-8 is checked by jansson; C0, DEL and C1 controls are refused here. */
static bool string_has_control(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++) {
                uint8_t c = (uint8_t) s[i];
                if (c < 0x20 || c == 0x7f)
                        return true;
                if (c == 0xc2 && i + 1 < n && (uint8_t) s[i + 1] >= 0x80 && (uint8_t) s[i + 1] <= 0x9f)
                        return true;
        }
        return false;
}

static int get_string(json_t *v, const char *path, const char **ret, size_t *ret_len, char *error) {
        const char *s;
        size_t n;

        if (!json_is_string(v))
                return fail(error, path, "not a string");
        s = json_string_value(v);
        n = json_string_length(v);
        if (n == 0)
                return fail(error, path, "empty string");
        if (n > POLICY_STRING_MAX)
                return fail(error, path, "longer than %u bytes", POLICY_STRING_MAX);
        if (string_has_control(s, n))
                return fail(error, path, "contains a control character");
        *ret = s;
        *ret_len = n;
        return 0;
}

static int get_bool(json_t *v, const char *path, bool *ret, char *error) {
        if (!json_is_boolean(v))
                return fail(error, path, "not a boolean");
        *ret = json_is_true(v);
        return 0;
}

static int get_integer(json_t *v, const char *path, long long lo, long long hi, long long *ret, char *error) {
        long long x;

        if (!json_is_integer(v))
                return fail(error, path, "not an integer");
        x = json_integer_value(v);
        if (x < lo || x > hi)
                return fail(error, path, "out of range (%lld..%lld)", lo, hi);
        *ret = x;
        return 0;
}

/* An array field of a rule: present, an array, 1..POLICY_LIST_MAX entries. */
static int get_list(json_t *v, const char *path, size_t *ret_n, char *error) {
        size_t n;

        if (!json_is_array(v))
                return fail(error, path, "not an array");
        n = json_array_size(v);
        if (n == 0)
                return fail(error, path, "empty list matches nothing");
        if (n > POLICY_LIST_MAX)
                return fail(error, path, "more than %u entries", POLICY_LIST_MAX);
        *ret_n = n;
        return 0;
}

static int parse_glob_list(json_t *v, const char *path, GlobList *ret, char *error) {
        size_t n;
        int r;

        r = get_list(v, path, &n, error);
        if (r < 0)
                return r;
        ret->globs = calloc(n, sizeof(Glob));
        if (!ret->globs)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char p[PATH_MAX_LEN];
                const char *s, *why = NULL;
                size_t len;

                snprintf(p, sizeof(p), "%s[%zu]", path, i);
                r = get_string(json_array_get(v, i), p, &s, &len, error);
                if (r < 0)
                        return r;
                r = glob_compile(s, len, &ret->globs[i], &why);
                if (r == -EINVAL)
                        return fail(error, p, "%s", why);
                if (r < 0)
                        return r;
                ret->n++;
        }
        return 0;
}

static int parse_id_list(json_t *v, const char *path, uint32_t **ret, size_t *ret_n, char *error) {
        _cleanup_free_ uint32_t *ids = NULL;
        size_t n;
        int r;

        r = get_list(v, path, &n, error);
        if (r < 0)
                return r;
        ids = malloc(n * sizeof(uint32_t));
        if (!ids)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char p[PATH_MAX_LEN];
                long long x;

                snprintf(p, sizeof(p), "%s[%zu]", path, i);
                r = get_integer(json_array_get(v, i), p, 0, UID_MAX_VALID, &x, error);
                if (r < 0)
                        return r;
                ids[i] = (uint32_t) x;
        }
        *ret = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

static int parse_actions(json_t *v, const char *path, uint32_t *ret, char *error) {
        uint32_t mask = 0;
        size_t n;
        int r;

        r = get_list(v, path, &n, error);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                char p[PATH_MAX_LEN];
                const char *s;
                size_t len;
                int a;

                snprintf(p, sizeof(p), "%s[%zu]", path, i);
                r = get_string(json_array_get(v, i), p, &s, &len, error);
                if (r < 0)
                        return r;
                a = policy_action_from_string(s);
                if (a < 0)
                        return fail(error, p, "unknown action \"%s\"", s);
                if (mask & (1U << a))
                        return fail(error, p, "duplicate action \"%s\"", s);
                mask |= 1U << a;
        }
        *ret = mask;
        return 0;
}

static int parse_exes(json_t *v, const char *path, Rule *rule, char *error) {
        size_t n;
        int r;

        r = get_list(v, path, &n, error);
        if (r < 0)
                return r;
        rule->exes = malloc(n * SHA256_DIGEST_SIZE);
        if (!rule->exes)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ uint8_t *bytes = NULL;
                char p[PATH_MAX_LEN];
                const char *s;
                size_t len, n_bytes;

                snprintf(p, sizeof(p), "%s[%zu]", path, i);
                r = get_string(json_array_get(v, i), p, &s, &len, error);
                if (r < 0)
                        return r;
                if (len != 2 * SHA256_DIGEST_SIZE)
                        return fail(error, p, "not 64 hexadecimal digits");
                r = hex_decode(s, &bytes, &n_bytes);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 || n_bytes != SHA256_DIGEST_SIZE)
                        return fail(error, p, "not 64 hexadecimal digits");
                memcpy(rule->exes[i], bytes, SHA256_DIGEST_SIZE);
        }
        rule->n_exes = n;
        return 0;
}

static int parse_rate(json_t *v, const char *path, Rule *rule, char *error) {
        static const char *const fields[] = { "limit", "interval" };
        char p[PATH_MAX_LEN];
        long long x;
        int r;

        if (!json_is_object(v))
                return fail(error, path, "not an object");
        r = check_fields(v, path, fields, ELEMENTSOF(fields), error);
        if (r < 0)
                return r;

        snprintf(p, sizeof(p), "%s.limit", path);
        if (!json_object_get(v, "limit"))
                return fail(error, p, "missing");
        r = get_integer(json_object_get(v, "limit"), p, 1, RATE_LIMIT_MAX, &x, error);
        if (r < 0)
                return r;
        rule->rate_limit = (uint32_t) x;

        snprintf(p, sizeof(p), "%s.interval", path);
        if (!json_object_get(v, "interval"))
                return fail(error, p, "missing");
        r = get_integer(json_object_get(v, "interval"), p, 1, RATE_INTERVAL_MAX, &x, error);
        if (r < 0)
                return r;
        rule->rate_interval = (uint32_t) x;
        return 0;
}

static bool rule_name_is_valid(const char *s, size_t n) {
        if (n == 0 || n > POLICY_RULE_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!s[i] || !strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", s[i]))
                        return false;
        return true;
}

/* The member name of obj, with its path written to p. */
static json_t *field(json_t *obj, const char *path, const char *name, char p[static PATH_MAX_LEN]) {
        snprintf(p, PATH_MAX_LEN, "%s.%s", path, name);
        return json_object_get(obj, name);
}

/* The fields a request must match; absent ones match anything. */
static int parse_matchers(json_t *obj, const char *path, Rule *rule, char *error) {
        const struct {
                const char *name;
                GlobList *list;
        } glob_fields[] = {
                { "keys", &rule->keys },
                { "units", &rule->units },
                { "audiences", &rule->audiences },
                { "peers", &rule->peers },
                { "tasks", &rule->tasks },
                { "scopes", &rule->scopes },
        };
        char p[PATH_MAX_LEN];
        json_t *v;
        int r;

        if ((v = field(obj, path, "actions", p))) {
                r = parse_actions(v, p, &rule->actions, error);
                if (r < 0)
                        return r;
        } else
                /* Key management is never extended by accident: a rule without "actions" covers the
                 * agent actions only; create, destroy and rotate must be named (DESIGN §3). */
                rule->actions = ((1U << _POLICY_ACTION_MAX) - 1) &
                                ~((1U << POLICY_ACTION_CREATE) | (1U << POLICY_ACTION_DESTROY) |
                                  (1U << POLICY_ACTION_ROTATE));

        for (size_t i = 0; i < ELEMENTSOF(glob_fields); i++)
                if ((v = field(obj, path, glob_fields[i].name, p))) {
                        r = parse_glob_list(v, p, glob_fields[i].list, error);
                        if (r < 0)
                                return r;
                }
        if ((v = field(obj, path, "uids", p))) {
                r = parse_id_list(v, p, &rule->uids, &rule->n_uids, error);
                if (r < 0)
                        return r;
        }
        if ((v = field(obj, path, "gids", p))) {
                r = parse_id_list(v, p, &rule->gids, &rule->n_gids, error);
                if (r < 0)
                        return r;
        }
        if ((v = field(obj, path, "exe_sha256", p))) {
                r = parse_exes(v, p, rule, error);
                if (r < 0)
                        return r;
        }
        if ((v = field(obj, path, "no_login_sessions", p))) {
                r = get_bool(v, p, &rule->no_login_sessions, error);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_rule(json_t *obj, size_t index, Rule *rule, Hashmap *names, char *error) {
        static const char *const fields[] = {
                "name", "comment", "effect",
                "actions", "keys", "uids", "gids", "exe_sha256", "units", "no_login_sessions",
                "audiences", "peers", "tasks", "scopes",
                "max_token_ttl", "rate", "require_task",
        };
        static const char *const limits[] = { "max_token_ttl", "rate", "require_task" };
        char path[PATH_MAX_LEN], p[PATH_MAX_LEN];
        const char *s;
        size_t len;
        json_t *v;
        int r;

        snprintf(path, sizeof(path), "$.rules[%zu]", index);
        if (!json_is_object(obj))
                return fail(error, path, "not an object");
        r = check_fields(obj, path, fields, ELEMENTSOF(fields), error);
        if (r < 0)
                return r;

        if ((v = field(obj, path, "name", p))) {
                r = get_string(v, p, &s, &len, error);
                if (r < 0)
                        return r;
                if (!rule_name_is_valid(s, len))
                        return fail(error, p, "not a valid rule name ([A-Za-z0-9._-], 1..%u characters)",
                                    POLICY_RULE_NAME_MAX);
                rule->name = strdup(s);
                if (!rule->name)
                        return -ENOMEM;
        } else if (asprintf(&rule->name, "rules[%zu]", index) < 0) {
                rule->name = NULL;
                return -ENOMEM;
        }
        /* Default names contain brackets, which names in the file cannot, so they never collide. */
        r = hashmap_put(names, rule->name, rule);
        if (r == -EEXIST)
                return fail(error, p, "duplicate rule name \"%s\"", rule->name);
        if (r < 0)
                return r;

        if ((v = field(obj, path, "comment", p))) {
                r = get_string(v, p, &s, &len, error);
                if (r < 0)
                        return r;
        }

        if (!(v = field(obj, path, "effect", p)))
                return fail(error, p, "missing");
        r = get_string(v, p, &s, &len, error);
        if (r < 0)
                return r;
        if (streq(s, "allow"))
                rule->effect = POLICY_ALLOW;
        else if (streq(s, "deny"))
                rule->effect = POLICY_DENY;
        else if (streq(s, "confirm"))
                rule->effect = POLICY_CONFIRM;
        else
                return fail(error, p, "unknown effect \"%s\" (allow, deny or confirm)", s);

        r = parse_matchers(obj, path, rule, error);
        if (r < 0)
                return r;

        if ((v = field(obj, path, "max_token_ttl", p))) {
                long long x;
                r = get_integer(v, p, 1, (long long) POLICY_TTL_MAX, &x, error);
                if (r < 0)
                        return r;
                rule->max_token_ttl = (uint64_t) x;
        }
        if ((v = field(obj, path, "rate", p))) {
                r = parse_rate(v, p, rule, error);
                if (r < 0)
                        return r;
        }
        if ((v = field(obj, path, "require_task", p))) {
                r = get_bool(v, p, &rule->require_task, error);
                if (r < 0)
                        return r;
        }

        if (rule->effect == POLICY_DENY)
                for (size_t i = 0; i < ELEMENTSOF(limits); i++)
                        if (field(obj, path, limits[i], p))
                                return fail(error, p, "a limit on a deny rule would never apply");
        return 0;
}

static int key_entry_add(Hashmap *h, const char *key, uint32_t rule) {
        KeyEntry *e = hashmap_get(h, key);
        int r;

        if (!e) {
                e = calloc(1, sizeof(KeyEntry));
                if (!e)
                        return -ENOMEM;
                r = hashmap_put(h, key, e);
                if (r < 0) {
                        free(e);
                        return r;
                }
        }
        /* Rules come in ascending order; a key listed twice in one rule is stored once. */
        if (e->n > 0 && e->rules[e->n - 1] == rule)
                return 0;
        if (e->n == e->allocated) {
                size_t k = e->allocated ? 2 * e->allocated : 2;
                uint32_t *v = realloc(e->rules, k * sizeof(uint32_t));
                if (!v)
                        return -ENOMEM;
                e->rules = v;
                e->allocated = k;
        }
        e->rules[e->n++] = rule;
        return 0;
}

static bool rule_keys_all_exact(const Rule *r) {
        if (r->keys.n == 0)
                return false;
        for (size_t i = 0; i < r->keys.n; i++)
                if (r->keys.globs[i].kind != GLOB_EXACT)
                        return false;
        return true;
}

/* The first and the last 8 bytes of a name, zero-padded (the last ones aligned to the end). Both
 * sides of each comparison are built with memcpy(), so the byte order does not matter. */
static uint64_t name_head(const char *s, size_t n) {
        uint64_t h = 0;
        if (s)
                memcpy(&h, s, MIN(n, sizeof(h)));
        return h;
}

static uint64_t name_tail(const char *s, size_t n) {
        uint8_t b[8] = {};
        size_t k = MIN(n, sizeof(b));
        uint64_t t;

        if (s)
                memcpy(b + sizeof(b) - k, s + n - k, k);
        memcpy(&t, b, sizeof(t));
        return t;
}

/* Byte pos of a match is op, if op is a literal; '?' and sets fix nothing. */
static void fix_byte(uint8_t word[8], uint8_t mask[8], size_t pos, unsigned op) {
        if (op > 0xff)
                return;
        word[pos] = (uint8_t) op;
        mask[pos] = 0xff;
}

/* Whether ops[from..to) fit in the filter's 8 bytes with nothing it cannot test: then a passed filter
 * proved them. */
static bool ops_in_filter(const Glob *g, size_t from, size_t to) {
        if (to - from > 8)
                return false;
        for (size_t i = from; i < to; i++)
                if (g->ops[i] > 0xff && g->ops[i] != OP_ANY)
                        return false;
        return true;
}

static void candidate_init(Candidate *c, const Rule *rule, uint32_t index) {
        uint8_t head[8] = {}, head_mask[8] = {}, tail[8] = {}, tail_mask[8] = {};
        const Glob *g;
        size_t k;

        *c = (Candidate) { .rule = index, .keys = KEYS_CHECK, .max_len = UINT32_MAX };
        if (rule->keys.n != 1)
                return;

        /* A literal is anchored at the start (exact, prefix) or at the end (exact, suffix); in a
         * general glob each op before the first '*' or after the last takes exactly one byte at a
         * fixed distance from that end. A literal byte is never NUL, so a name too short to reach it
         * fails the test, as it should. */
        g = &rule->keys.globs[0];
        switch (g->kind) {
        case GLOB_EXACT:
        case GLOB_PREFIX:
        case GLOB_SUFFIX:
                c->min_len = (uint32_t) g->literal_len;
                if (g->kind == GLOB_EXACT)
                        c->max_len = (uint32_t) g->literal_len;
                k = MIN(g->literal_len, sizeof(head));
                for (size_t i = 0; i < k && g->kind != GLOB_SUFFIX; i++)
                        fix_byte(head, head_mask, i, (uint8_t) g->literal[i]);
                for (size_t i = 0; i < k && g->kind != GLOB_PREFIX; i++)
                        fix_byte(tail, tail_mask, sizeof(tail) - k + i, (uint8_t) g->literal[g->literal_len - k + i]);
                if (g->literal_len <= sizeof(head))
                        c->keys = KEYS_DONE;
                break;
        case GLOB_GENERAL: {
                size_t head_end = g->has_star ? g->head : g->n_ops;
                size_t tail_start = g->has_star ? g->tail : 0;

                c->min_len = (uint32_t) g->min_len;
                if (!g->has_star)
                        c->max_len = (uint32_t) g->min_len;
                for (size_t i = 0; i < MIN(head_end, sizeof(head)); i++)
                        fix_byte(head, head_mask, i, g->ops[i]);
                k = MIN(g->n_ops - tail_start, sizeof(tail));
                for (size_t i = 0; i < k; i++)
                        fix_byte(tail, tail_mask, sizeof(tail) - k + i, g->ops[g->n_ops - k + i]);
                if (!g->has_star)
                        c->keys = ops_in_filter(g, 0, g->n_ops) ? KEYS_DONE : KEYS_CHECK;
                else if (ops_in_filter(g, 0, g->head) && ops_in_filter(g, g->tail, g->n_ops))
                        c->keys = g->head + 1 == g->tail ? KEYS_DONE : KEYS_MIDDLE;
                break;
        }
        default:
                return;
        }
        memcpy(&c->head, head, sizeof(head));
        memcpy(&c->head_mask, head_mask, sizeof(head_mask));
        memcpy(&c->tail, tail, sizeof(tail));
        memcpy(&c->tail_mask, tail_mask, sizeof(tail_mask));
}

static int build_index(Policy *p) {
        for (size_t a = 0; a < _POLICY_ACTION_MAX; a++) {
                ActionIndex *ix = &p->index[a];

                ix->by_key = hashmap_new();
                ix->wildcard = malloc(MAX(p->n_rules, (size_t) 1) * sizeof(Candidate));
                if (!ix->by_key || !ix->wildcard)
                        return -ENOMEM;

                for (size_t i = 0; i < p->n_rules; i++) {
                        const Rule *rule = &p->rules[i];

                        if (!(rule->actions & (1U << a)))
                                continue;
                        if (!rule_keys_all_exact(rule)) {
                                candidate_init(&ix->wildcard[ix->n_wildcard++], rule, (uint32_t) i);
                                continue;
                        }
                        for (size_t k = 0; k < rule->keys.n; k++) {
                                int r = key_entry_add(ix->by_key, rule->keys.globs[k].literal, (uint32_t) i);
                                if (r < 0)
                                        return r;
                        }
                }
        }
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Hashmap *, hashmap_free);

static int parse_document(json_t *root, Policy *p, char *error) {
        static const char *const fields[] = { "version", "rules", "comment" };
        _cleanup_(hashmap_freep) Hashmap *names = NULL;
        const char *s;
        size_t len, n;
        json_t *v, *rules;
        long long version;
        int r;

        if (!json_is_object(root))
                return fail(error, "$", "not an object");

        /* The version first: a newer document's unknown fields are best explained by it. */
        if (!(v = json_object_get(root, "version")))
                return fail(error, "$.version", "missing");
        if (!json_is_integer(v))
                return fail(error, "$.version", "not an integer");
        version = json_integer_value(v);
        if (version != 1)
                return fail(error, "$.version", "unsupported version %lld (only 1 is defined)", version);

        r = check_fields(root, "$", fields, ELEMENTSOF(fields), error);
        if (r < 0)
                return r;
        if ((v = json_object_get(root, "comment")) && (r = get_string(v, "$.comment", &s, &len, error)) < 0)
                return r;

        if (!(rules = json_object_get(root, "rules")))
                return fail(error, "$.rules", "missing");
        if (!json_is_array(rules))
                return fail(error, "$.rules", "not an array");
        n = json_array_size(rules);
        if (n > POLICY_RULES_MAX)
                return fail(error, "$.rules", "more than %u rules", POLICY_RULES_MAX);

        names = hashmap_new();
        p->rules = calloc(MAX(n, (size_t) 1), sizeof(Rule));
        if (!names || !p->rules)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                /* Counted first, so policy_free() releases a half-parsed rule too. */
                p->n_rules++;
                r = parse_rule(json_array_get(rules, i), i, &p->rules[i], names, error);
                if (r < 0)
                        return r;
                Rule *rule = &p->rules[i];
                rule->has_more = rule->uids || rule->gids || rule->exes || rule->units.n > 0 ||
                                 rule->no_login_sessions || rule->audiences.n > 0 || rule->peers.n > 0 ||
                                 rule->tasks.n > 0 || rule->scopes.n > 0;
                if (rule->gids)
                        p->needs |= POLICY_NEED_GIDS;
                if (rule->exes)
                        p->needs |= POLICY_NEED_EXE;
                if (rule->units.n > 0)
                        p->needs |= POLICY_NEED_UNIT;
                if (rule->no_login_sessions)
                        p->needs |= POLICY_NEED_SESSION;
        }
        return build_index(p);
}

int policy_parse(const void *text, size_t size, Policy **ret, char error[POLICY_ERROR_MAX]) {
        _cleanup_(policy_freep) Policy *p = NULL;
        _cleanup_(json_decrefp) json_t *root = NULL; /* jansson's own cleanup helper */
        json_error_t jerr;
        int r;

        assert(ret);
        assert(text || size == 0);

        if (size > POLICY_FILE_MAX) {
                set_error(error, "the document is larger than %u bytes", POLICY_FILE_MAX);
                return -EFBIG;
        }

        /* jansson's defaults refuse trailing data, "\u0000" and invalid UTF-8; we add duplicates. */
        root = json_loadb(text ? text : "", size, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                if (json_error_code(&jerr) == json_error_out_of_memory) {
                        set_error(error, "out of memory");
                        return -ENOMEM;
                }
                set_error(error, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
                return -EINVAL;
        }

        p = calloc(1, sizeof(Policy));
        if (!p) {
                set_error(error, "out of memory");
                return -ENOMEM;
        }
        r = parse_document(root, p, error);
        if (r == -ENOMEM)
                set_error(error, "out of memory");
        if (r < 0)
                return r;
        r = sha256(text ? text : "", size, p->digest);
        if (r < 0) {
                set_error(error, "cannot hash the document");
                return r;
        }

        *ret = TAKE_PTR(p);
        return 0;
}

int policy_load_file(const char *path, Policy **ret, char error[POLICY_ERROR_MAX]) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t have = 0;
        struct stat st;
        int r;

        assert(path);
        assert(ret);

        /* Symlinks are followed: admins link the policy from a managed location. O_NONBLOCK keeps a
         * FIFO from hanging us before the S_ISREG check. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                r = -errno;
                set_error(error, "%s: %s", path, strerror(-r));
                return r;
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                set_error(error, "%s: %s", path, strerror(-r));
                return r;
        }
        /* Like a parse error, -EINVAL comes without the path: the caller names the file. */
        if (!S_ISREG(st.st_mode)) {
                set_error(error, "not a regular file");
                return -EINVAL;
        }
        if ((uint64_t) st.st_size > POLICY_FILE_MAX) {
                set_error(error, "%s: %s", path, strerror(EFBIG));
                return -EFBIG;
        }

        /* Read to EOF, not to st_size: the file may be rewritten under us (rename() is the safe way to
         * update it, but not everybody uses it). One byte past the limit tells a too large file. */
        buf = malloc(POLICY_FILE_MAX + 1);
        if (!buf) {
                set_error(error, "out of memory");
                return -ENOMEM;
        }
        while (have <= POLICY_FILE_MAX) {
                ssize_t k = read(fd, buf + have, POLICY_FILE_MAX + 1 - have);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        set_error(error, "%s: %s", path, strerror(-r));
                        return r;
                }
                if (k == 0)
                        break;
                have += (size_t) k;
        }
        if (have > POLICY_FILE_MAX) {
                set_error(error, "%s: %s", path, strerror(EFBIG));
                return -EFBIG;
        }

        return policy_parse(buf, have, ret, error);
}

const uint8_t *policy_digest(const Policy *p) {
        assert(p);
        return p->digest;
}

size_t policy_rule_count(const Policy *p) {
        assert(p);
        return p->n_rules;
}

unsigned policy_needs(const Policy *p) {
        assert(p);
        return p->needs;
}

/* ---- decisions ---- */

/* The request's strings with their lengths, measured once per decision rather than once per rule. */
typedef struct Facts {
        const PolicyRequest *req;
        size_t key_len, unit_len, audience_len, peer_len, task_len;
} Facts;

static void facts_init(Facts *f, const PolicyRequest *req) {
        *f = (Facts) {
                .req = req,
                .key_len = req->key ? strlen(req->key) : 0,
                .unit_len = req->unit ? strlen(req->unit) : 0,
                .audience_len = req->audience ? strlen(req->audience) : 0,
                .peer_len = req->peer ? strlen(req->peer) : 0,
                .task_len = req->task_id ? strlen(req->task_id) : 0,
        };
}

static bool id_in(const uint32_t *ids, size_t n, uint32_t id) {
        for (size_t i = 0; i < n; i++)
                if (ids[i] == id)
                        return true;
        return false;
}

static bool gids_match(const Rule *r, const PolicyRequest *req) {
        if (!req->gids)
                return false;
        for (size_t i = 0; i < req->n_gids; i++)
                if (id_in(r->gids, r->n_gids, req->gids[i]))
                        return true;
        return false;
}

static bool exe_match(const Rule *r, const PolicyRequest *req) {
        if (!req->exe_sha256)
                return false;
        for (size_t i = 0; i < r->n_exes; i++)
                if (memcmp(r->exes[i], req->exe_sha256, SHA256_DIGEST_SIZE) == 0)
                        return true;
        return false;
}

/* An allowing rule (allow, confirm) matches when every requested scope is one of its globs — a
 * request for no scope asks for nothing it could refuse. A deny rule matches when any requested scope
 * is: "deny admin" must catch ["admin", "read"], and must not catch a request for no scope. */
static bool scopes_match(const Rule *r, const PolicyRequest *req) {
        bool deny = r->effect == POLICY_DENY;

        for (size_t i = 0; i < req->n_scopes; i++) {
                const char *s = req->scopes ? req->scopes[i] : NULL;
                bool hit = s && glob_list_match(&r->scopes, s, strlen(s));
                if (deny && hit)
                        return true;
                if (!deny && !hit)
                        return false;
        }
        return !deny;
}

static bool optional_glob_match(const GlobList *l, const char *s, size_t n) {
        return s && glob_list_match(l, s, n);
}

static bool keys_match(const Rule *r, const Facts *f, KeyCheck keys) {
        switch (keys) {
        case KEYS_DONE:
                return true;
        case KEYS_MIDDLE:
                return glob_middle_match(&r->keys.globs[0], (const uint8_t *) f->req->key, f->key_len);
        default:
                return r->keys.n == 0 || optional_glob_match(&r->keys, f->req->key, f->key_len);
        }
}

/*
 * The first field of the rule that does not match, or NULL when all do. The order is the trace's.
 * skip_actions, keys: what the index already established.
 */
static const char *rule_mismatch(const Rule *r, const Facts *f, bool skip_actions, KeyCheck keys) {
        const PolicyRequest *req = f->req;

        if (!skip_actions &&
            ((unsigned) req->action >= _POLICY_ACTION_MAX || !(r->actions & (1U << req->action))))
                return "actions";
        if (!keys_match(r, f, keys))
                return "keys";
        if (!r->has_more)
                return NULL;
        if (r->uids && !id_in(r->uids, r->n_uids, req->uid))
                return "uids";
        if (r->gids && !gids_match(r, req))
                return "gids";
        if (r->exes && !exe_match(r, req))
                return "exe_sha256";
        if (r->units.n > 0 && !optional_glob_match(&r->units, req->unit, f->unit_len))
                return "units";
        if (r->no_login_sessions && req->login_session != 0)
                return "no_login_sessions";
        if (r->audiences.n > 0 && !optional_glob_match(&r->audiences, req->audience, f->audience_len))
                return "audiences";
        if (r->peers.n > 0 && !optional_glob_match(&r->peers, req->peer, f->peer_len))
                return "peers";
        if (r->tasks.n > 0 && !optional_glob_match(&r->tasks, req->task_id, f->task_len))
                return "tasks";
        if (r->scopes.n > 0 && !scopes_match(r, req))
                return "scopes";
        return NULL;
}

static void bucket_unlink(RateTable *t, Bucket *b) {
        if (b->newer)
                b->newer->older = b->older;
        else
                t->newest = b->older;
        if (b->older)
                b->older->newer = b->newer;
        else
                t->oldest = b->newer;
        b->newer = b->older = NULL;
}

static void bucket_push_newest(RateTable *t, Bucket *b) {
        b->older = t->newest;
        b->newer = NULL;
        if (t->newest)
                t->newest->newer = b;
        t->newest = b;
        if (!t->oldest)
                t->oldest = b;
}

/*
 * The bucket of key, created full if there is none. When the table is full the least recently used
 * bucket makes room: it has had the longest time to refill, so it is the one most likely full anyway
 * (a full bucket carries no state), and finding it costs O(1) where a search for a full one would
 * scan the table on every miss. Evicting a bucket that was not full grants its key a fresh burst;
 * that needs RATE_BUCKETS_MAX other keys used in between, which a caller could as well spend on
 * requests for new names. NULL on allocation failure.
 */
static Bucket *rate_bucket(Rule *rule, const char *key, uint64_t now) {
        RateTable *t = &rule->rate;
        Bucket *b;

        if (!t->by_key) {
                t->by_key = hashmap_new();
                if (!t->by_key)
                        return NULL;
        }
        b = hashmap_get(t->by_key, key);
        if (b) {
                bucket_unlink(t, b);
                bucket_push_newest(t, b);
                return b;
        }

        if (t->n >= RATE_BUCKETS_MAX) {
                Bucket *old = t->oldest;
                bucket_unlink(t, old);
                (void) hashmap_remove(t->by_key, old->key);
                free(old->key);
                free(old);
                t->n--;
        }

        b = calloc(1, sizeof(Bucket));
        if (!b)
                return NULL;
        b->key = strdup(key);
        if (!b->key || hashmap_put(t->by_key, b->key, b) < 0) {
                free(b->key);
                free(b);
                return NULL;
        }
        b->credit = (uint64_t) rule->rate_limit * rule->rate_interval * USEC_PER_SEC;
        b->last_usec = now;
        bucket_push_newest(t, b);
        t->n++;
        return b;
}

/* Buckets are per key — except for "create", whose key does not exist yet: every new name would get
 * a full bucket, so creations are counted per caller uid instead. */
static const char *rate_bucket_key(const PolicyRequest *req, char *buf, size_t size) {
        if (req->action != POLICY_ACTION_CREATE)
                return req->key;
        (void) snprintf(buf, size, "uid:%" PRIu32, req->uid);
        return buf;
}

static bool rate_take(Rule *rule, const char *key, uint64_t now) {
        uint64_t interval = rule->rate_interval * USEC_PER_SEC;
        uint64_t capacity = rule->rate_limit * interval;
        Bucket *b;

        /* Fail closed: a rate we cannot track is a rate exhausted. */
        b = rate_bucket(rule, key ? key : "", now);
        if (!b)
                return false;

        /* The clock is monotonic, but a caller may hand us an older timestamp; that refills nothing. */
        if (now > b->last_usec) {
                uint64_t elapsed = MIN(now - b->last_usec, interval);
                b->credit = MIN(capacity, b->credit + elapsed * rule->rate_limit);
        }
        b->last_usec = now;

        if (b->credit < interval)
                return false;
        b->credit -= interval;
        return true;
}

/* The decision of the first matching rule, before its rate limit. */
static void decision_for_rule(const Rule *rule, const PolicyRequest *req, PolicyDecision *ret) {
        *ret = (PolicyDecision) {
                .effect = POLICY_DENY,
                .rule = rule->name,
        };
        if (rule->effect == POLICY_DENY) {
                ret->reason = REASON_DENY_RULE;
                return;
        }
        if (rule->require_task && !req->task_id) {
                ret->reason = REASON_NO_TASK;
                return;
        }
        ret->effect = rule->effect;
        ret->max_token_ttl = rule->max_token_ttl;
        ret->names_task = rule->tasks.n > 0;
}

static void decision_no_rule(PolicyDecision *ret) {
        *ret = (PolicyDecision) {
                .effect = POLICY_DENY,
                .reason = REASON_NO_RULE,
        };
}

void policy_decide(Policy *p, const PolicyRequest *req, PolicyDecision *ret) {
        const ActionIndex *ix;
        const KeyEntry *e = NULL;
        size_t i = 0, j = 0, n_exact = 0;
        uint64_t head, tail;
        uint32_t key_len;
        char uid_key[32];
        Facts f;

        assert(p);
        assert(req);
        assert(ret);

        if ((unsigned) req->action >= _POLICY_ACTION_MAX) {
                decision_no_rule(ret);
                return;
        }

        facts_init(&f, req);
        head = name_head(req->key, f.key_len);
        tail = name_tail(req->key, f.key_len);
        key_len = (uint32_t) MIN(f.key_len, (size_t) UINT32_MAX);
        ix = &p->index[req->action];
        if (req->key) {
                e = hashmap_get(ix->by_key, req->key);
                n_exact = e ? e->n : 0;
        }

        /* Both lists are ascending and disjoint: merging them visits candidates in rule order. */
        while (i < n_exact || j < ix->n_wildcard) {
                bool exact = j >= ix->n_wildcard || (i < n_exact && e->rules[i] < ix->wildcard[j].rule);
                KeyCheck keys = KEYS_DONE;
                uint32_t k;

                if (exact)
                        k = e->rules[i++];
                else {
                        const Candidate *c = &ix->wildcard[j++];
                        if ((head & c->head_mask) != c->head || (tail & c->tail_mask) != c->tail ||
                            key_len < c->min_len || key_len > c->max_len)
                                continue;
                        k = c->rule;
                        keys = c->keys;
                }
                Rule *rule = &p->rules[k];

                if (rule_mismatch(rule, &f, true, keys))
                        continue;

                decision_for_rule(rule, req, ret);
                if (ret->effect != POLICY_DENY && rule->rate_limit > 0 &&
                    !rate_take(rule, rate_bucket_key(req, uid_key, sizeof(uid_key)), req->now_usec)) {
                        ret->effect = POLICY_DENY;
                        ret->reason = REASON_RATE;
                        ret->max_token_ttl = 0;
                }
                return;
        }
        decision_no_rule(ret);
}

void policy_explain(const Policy *p, const PolicyRequest *req, PolicyTraceFn trace, void *userdata,
                    PolicyDecision *ret) {
        Facts f;

        assert(p);
        assert(req);
        assert(ret);

        facts_init(&f, req);
        for (size_t i = 0; i < p->n_rules; i++) {
                const Rule *rule = &p->rules[i];
                const char *mismatch = rule_mismatch(rule, &f, false, KEYS_CHECK);

                if (trace)
                        trace(rule->name, mismatch, userdata);
                if (!mismatch) {
                        /* The rate limit is left out: explaining must not use up tokens. */
                        decision_for_rule(rule, req, ret);
                        return;
                }
        }
        decision_no_rule(ret);
}
