#include "engine/scheduler.h"

#include <stdlib.h>
#include <string.h>

void sk_sched_init(sk_sched *s, sk_kv_pages *kv, int max_batch, int max_tokens, bool prefix_caching) {
    memset(s, 0, sizeof *s);
    s->kv = kv;
    s->page_size = sk_kv_pages_page_size(kv);
    s->max_batch = max_batch;
    s->max_tokens = max_tokens;
    s->prefix_caching = prefix_caching;
}

void sk_sched_free(sk_sched *s) {
    free(s->waiting);
    free(s->running);
    memset(s, 0, sizeof *s);
}

/* Inserts q into list (sorted by order). */
static void list_insert(sk_sched_seq **list, int *n, sk_sched_seq *q) {
    int i = *n;
    while (i > 0 && list[i - 1]->order > q->order) {
        list[i] = list[i - 1];
        i--;
    }
    list[i] = q;
    (*n)++;
}

static void list_erase(sk_sched_seq **list, int *n, sk_sched_seq *q) {
    for (int i = 0; i < *n; i++)
        if (list[i] == q) {
            memmove(list + i, list + i + 1, sizeof(*list) * (size_t)(*n - i - 1));
            (*n)--;
            return;
        }
    SK_ASSERT(0 && "sequence not in the list");
}

static void reserve(sk_sched *s) {
    if (s->n_waiting + s->n_running < s->cap) return;
    s->cap = s->cap ? 2 * s->cap : 64;
    s->waiting = sk_xrealloc(s->waiting, sizeof(*s->waiting) * (size_t)s->cap);
    s->running = sk_xrealloc(s->running, sizeof(*s->running) * (size_t)s->cap);
}

void sk_sched_add(sk_sched *s, sk_sched_seq *q) {
    SK_ASSERT(!q->queued && q->n_toks >= 1);
    reserve(s);
    q->n_pages = 0;
    q->n_computed = 0;
    q->hash = 0;
    q->n_hashed = 0;
    q->chunk = 0;
    q->running = false;
    q->queued = true;
    list_insert(s->waiting, &s->n_waiting, q);
}

static void release_pages(sk_sched *s, sk_sched_seq *q) {
    for (int j = 0; j < q->n_pages; j++) sk_kv_pages_release(s->kv, q->pages[j]);
    q->n_pages = 0;
    q->n_computed = 0;
    q->hash = 0;
    q->n_hashed = 0;
    q->chunk = 0;
}

void sk_sched_remove(sk_sched *s, sk_sched_seq *q) {
    if (!q->queued) return;
    release_pages(s, q);
    if (q->running)
        list_erase(s->running, &s->n_running, q);
    else
        list_erase(s->waiting, &s->n_waiting, q);
    q->running = q->queued = false;
}

/* Running -> waiting, pages released: it is recomputed from its token list later. */
static void preempt(sk_sched *s, sk_sched_seq *q) {
    release_pages(s, q);
    list_erase(s->running, &s->n_running, q);
    q->running = false;
    list_insert(s->waiting, &s->n_waiting, q);
    s->n_preemptions++;
}

static void grow_pages(sk_sched_seq *q, int n) {
    if (n <= q->cap_pages) return;
    int cap = q->cap_pages ? q->cap_pages : 8;
    while (cap < n) cap *= 2;
    q->pages = sk_xrealloc(q->pages, sizeof(int32_t) * (size_t)cap);
    q->cap_pages = cap;
}

/* Allocates the pages q needs for positions < n_computed + chunk. */
static sk_status take_pages(sk_sched *s, sk_sched_seq *q, int chunk) {
    const int need = sk_sched_pages_for(q->n_computed + chunk, s->page_size) - q->n_pages;
    if (need <= 0) return SK_OK;
    if (need > sk_kv_pages_available(s->kv)) return SK_ERR_CONTEXT;
    grow_pages(q, q->n_pages + need);
    SK_TRY(sk_kv_pages_alloc(s->kv, need, q->pages + q->n_pages));
    q->n_pages += need;
    return SK_OK;
}

/* Shares the published pages that hold q's first tokens (all but the page of its last token). */
static void lookup_prefix(sk_sched *s, sk_sched_seq *q) {
    q->prefix_hit_tokens = 0;
    if (!s->prefix_caching) return;
    const int max_pages = (q->n_toks - 1) / s->page_size;
    while (q->n_pages < max_pages) {
        uint64_t h;
        const int32_t id =
            sk_kv_pages_lookup(s->kv, q->hash, q->toks + (size_t)q->n_pages * s->page_size, &h);
        if (id < 0) break;
        grow_pages(q, q->n_pages + 1);
        q->pages[q->n_pages++] = id;
        q->hash = h;
        q->n_hashed = q->n_pages;
    }
    q->n_computed = q->n_pages * s->page_size;
    q->prefix_hit_tokens = q->n_computed;
}

int sk_sched_plan(sk_sched *s, sk_sched_seq **out, int cap) {
    int n = 0, budget = s->max_tokens;
    for (int i = 0; i < s->n_running; i++) s->running[i]->chunk = 0;

    /* 1 and 2: decodes, then prompt chunks, of running sequences, oldest first. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < s->n_running && budget > 0 && n < cap; i++) {
            sk_sched_seq *q = s->running[i];
            const int pending = q->n_toks - q->n_computed;
            SK_ASSERT(pending >= 1);
            if ((pass == 0) != (pending == 1) || q->chunk > 0) continue;
            const int chunk = pending < budget ? pending : budget;
            bool self = false;
            while (take_pages(s, q, chunk) != SK_OK) {
                /* Preempt the newest running sequence (q itself when it is the newest). */
                sk_sched_seq *v = s->running[s->n_running - 1];
                if (v == q) {
                    preempt(s, q);
                    self = true;
                    break;
                }
                if (v->chunk > 0) { /* scheduled earlier in this step: unschedule it */
                    budget += v->chunk;
                    for (int k = 0; k < n; k++)
                        if (out[k] == v) {
                            memmove(out + k, out + k + 1, sizeof(*out) * (size_t)(n - k - 1));
                            n--;
                            break;
                        }
                }
                preempt(s, v);
            }
            if (self) break; /* q was the newest: nothing after it runs either */
            q->chunk = chunk;
            budget -= chunk;
            out[n++] = q;
        }
    }

    /* 3: admissions, oldest first, no skipping. */
    while (s->n_waiting > 0 && budget > 0 && n < cap && s->n_running < s->max_batch) {
        sk_sched_seq *q = s->waiting[0];
        lookup_prefix(s, q);
        const int pending = q->n_toks - q->n_computed;
        const int chunk = pending < budget ? pending : budget;
        if (take_pages(s, q, chunk) != SK_OK) {
            /* Not now: give back the shared pages (they stay cached). */
            release_pages(s, q);
            q->prefix_hit_tokens = 0;
            break;
        }
        s->n_prefix_hit_tokens += (uint64_t)q->prefix_hit_tokens;
        memmove(s->waiting, s->waiting + 1, sizeof(*s->waiting) * (size_t)(s->n_waiting - 1));
        s->n_waiting--;
        q->running = true;
        list_insert(s->running, &s->n_running, q);
        q->chunk = chunk;
        budget -= chunk;
        out[n++] = q;
    }
    return n;
}

void sk_sched_commit(sk_sched *s, sk_sched_seq **out, int n) {
    for (int i = 0; i < n; i++) {
        sk_sched_seq *q = out[i];
        q->n_computed += q->chunk;
        q->chunk = 0;
        SK_ASSERT(q->n_computed <= q->n_toks);
        if (!s->prefix_caching) continue;
        const int full = q->n_computed / s->page_size;
        for (; q->n_hashed < full; q->n_hashed++)
            q->hash = sk_kv_pages_publish(s->kv, q->pages[q->n_hashed], q->hash,
                                          q->toks + (size_t)q->n_hashed * s->page_size);
    }
}
