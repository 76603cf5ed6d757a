/* In-flight batching scheduler: which sequences run in the next step, with how many of their
 * pending tokens, and which KV pages they hold. Pure bookkeeping over sk_kv_pages (no device
 * work, no threads): the engine thread owns it.
 *
 * A sequence is its token list toks[0..n_toks) (prompt, then every token generated so far) and
 * n_computed, how many of them have their K/V in its pages. Pending tokens toks[n_computed..)
 * are fed in chunks; when a chunk reaches the end of the list its last row yields logits and the
 * engine appends the sampled token. Prefill and decode are the same thing here (a decode step
 * is a chunk of one), and a preempted sequence simply starts again from n_computed = 0 with its
 * generated tokens as part of the list (recomputed, nothing sampled twice).
 *
 * Each step (sk_sched_plan), under max_num_tokens rows and max_batch sequences in flight:
 *   1. running sequences with one pending token (decode), oldest first;
 *   2. running sequences with more (prompt chunks), oldest first;
 *   3. waiting sequences (new, or preempted: ordered by arrival), oldest first, while pages and
 *      budget allow (no skipping: the oldest waiting request is never overtaken).
 * A running sequence that needs a page when none is free preempts the newest running sequence
 * (its pages released, back to waiting), itself if it is the newest. The oldest sequence thus
 * always makes progress, and every admitted request fits the pool alone (checked at submission),
 * so every request completes.
 *
 * Prefix caching: after each step, every page that became full is published under the chained
 * hash of its tokens (sk_kv_pages_publish); admission looks up the longest run of published pages
 * matching the sequence's first tokens and shares them (never its last token's page: at least
 * one token is always computed, so the logits exist and no shared page is written). */
#ifndef SK_SCHEDULER_H
#define SK_SCHEDULER_H

#include "engine/kv_pages.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct sk_sched_seq {
    uint64_t order;       /* arrival: lower is older */
    const int32_t *toks;  /* the owner's token list (may move between steps; not during one) */
    int n_toks;
    /* Owned by the scheduler. */
    int32_t *pages; /* page table: pages[j] holds positions j*page_size .. */
    int n_pages, cap_pages;
    int n_computed;
    uint64_t hash; /* chained hash of the first n_hashed pages */
    int n_hashed;
    int chunk;     /* tokens scheduled in this step (0: not scheduled) */
    bool running;  /* admitted (else waiting) */
    bool queued;   /* in the scheduler at all */
    int prefix_hit_tokens; /* tokens found in the prefix cache at the last admission */
    void *owner;
} sk_sched_seq;

typedef struct sk_sched {
    sk_kv_pages *kv;
    int page_size, max_batch, max_tokens;
    bool prefix_caching;
    sk_sched_seq **waiting, **running; /* both sorted by order */
    int n_waiting, n_running, cap;
    /* Counters. */
    uint64_t n_preemptions, n_prefix_hit_tokens;
} sk_sched;

/* kv stays owned by the caller. cap: the most sequences ever queued at once (grown as needed). */
void sk_sched_init(sk_sched *s, sk_kv_pages *kv, int max_batch, int max_tokens, bool prefix_caching);
void sk_sched_free(sk_sched *s);

/* Queues a new sequence (n_toks >= 1, n_computed 0, no pages) as waiting. */
void sk_sched_add(sk_sched *s, sk_sched_seq *q);
/* Takes q out (finished or cancelled), releasing its pages. */
void sk_sched_remove(sk_sched *s, sk_sched_seq *q);

/* Plans the next step: fills out[] with the scheduled sequences (chunk > 0 each, pages covering
 * positions < n_computed + chunk) and returns how many. Preempted sequences are back in waiting
 * with chunk 0. Returns 0 when nothing can run. */
int sk_sched_plan(sk_sched *s, sk_sched_seq **out, int cap);
/* After the step ran: n_computed += chunk for each of out[0..n), full pages published. */
void sk_sched_commit(sk_sched *s, sk_sched_seq **out, int n);

/* Pages needed by a sequence of n tokens (positions 0..n-1). */
static inline int sk_sched_pages_for(int n, int page_size) { return (n + page_size - 1) / page_size; }

#endif
