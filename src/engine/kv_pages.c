#include "engine/kv_pages.h"

#include <string.h>

typedef struct page {
    int32_t refs;
    bool published;
    uint64_t hash;
    int32_t lru_prev, lru_next; /* cached-and-unreferenced list (published, refs == 0) */
    int32_t hnext;              /* hash bucket chain */
} page;

struct sk_kv_pages {
    int n, page_size;
    page *pages;
    int32_t *tokens;  /* [n][page_size]: the tokens of published pages */
    int32_t *free_ids; /* stack of free (never published or evicted) pages */
    int n_free;
    int32_t lru_head, lru_tail; /* oldest first */
    int n_cached;
    int n_in_use;
    int32_t *buckets; /* [n_buckets] heads of hash chains */
    int n_buckets;
};

sk_status sk_kv_pages_new(int n_pages, int page_size, sk_kv_pages **out) {
    *out = NULL;
    if (n_pages < 1 || page_size < 1 || (int64_t)n_pages * page_size > ((int64_t)1 << 40))
        return sk_fail(SK_ERR_ARG, "kv pages: %d pages of %d tokens is not a valid pool", n_pages, page_size);
    sk_kv_pages *p = sk_xcalloc(1, sizeof *p);
    p->n = n_pages;
    p->page_size = page_size;
    p->pages = calloc((size_t)n_pages, sizeof(page));
    p->tokens = malloc(sizeof(int32_t) * (size_t)n_pages * (size_t)page_size);
    p->free_ids = malloc(sizeof(int32_t) * (size_t)n_pages);
    p->n_buckets = 1;
    while (p->n_buckets < 2 * n_pages) p->n_buckets <<= 1;
    p->buckets = malloc(sizeof(int32_t) * (size_t)p->n_buckets);
    if (!p->pages || !p->tokens || !p->free_ids || !p->buckets) {
        sk_kv_pages_free(p);
        return sk_fail(SK_ERR_NOMEM, "kv pages: out of memory for %d pages", n_pages);
    }
    for (int i = 0; i < p->n_buckets; i++) p->buckets[i] = -1;
    /* Stack: page 0 on top, so ids come out in increasing order on a fresh pool. */
    for (int i = 0; i < n_pages; i++) p->free_ids[i] = n_pages - 1 - i;
    p->n_free = n_pages;
    p->lru_head = p->lru_tail = -1;
    *out = p;
    return SK_OK;
}

void sk_kv_pages_free(sk_kv_pages *p) {
    if (!p) return;
    free(p->pages);
    free(p->tokens);
    free(p->free_ids);
    free(p->buckets);
    free(p);
}

int sk_kv_pages_page_size(const sk_kv_pages *p) { return p->page_size; }
int sk_kv_pages_total(const sk_kv_pages *p) { return p->n; }
int sk_kv_pages_available(const sk_kv_pages *p) { return p->n_free + p->n_cached; }
int sk_kv_pages_in_use(const sk_kv_pages *p) { return p->n_in_use; }

static void lru_remove(sk_kv_pages *p, int32_t id) {
    page *g = &p->pages[id];
    if (g->lru_prev >= 0) p->pages[g->lru_prev].lru_next = g->lru_next;
    else p->lru_head = g->lru_next;
    if (g->lru_next >= 0) p->pages[g->lru_next].lru_prev = g->lru_prev;
    else p->lru_tail = g->lru_prev;
    g->lru_prev = g->lru_next = -1;
    p->n_cached--;
}

static void lru_push(sk_kv_pages *p, int32_t id) {
    page *g = &p->pages[id];
    g->lru_prev = p->lru_tail;
    g->lru_next = -1;
    if (p->lru_tail >= 0) p->pages[p->lru_tail].lru_next = id;
    else p->lru_head = id;
    p->lru_tail = id;
    p->n_cached++;
}

static void unpublish(sk_kv_pages *p, int32_t id) {
    page *g = &p->pages[id];
    int32_t *link = &p->buckets[g->hash & (uint64_t)(p->n_buckets - 1)];
    while (*link != id) {
        SK_ASSERT(*link >= 0);
        link = &p->pages[*link].hnext;
    }
    *link = g->hnext;
    g->published = false;
}

sk_status sk_kv_pages_alloc(sk_kv_pages *p, int n, int32_t *ids) {
    if (n < 0 || n > p->n_free + p->n_cached)
        return sk_fail(SK_ERR_CONTEXT, "KV cache full: %d pages needed, %d of %d available", n,
                       p->n_free + p->n_cached, p->n);
    for (int i = 0; i < n; i++) {
        int32_t id;
        if (p->n_free > 0) {
            id = p->free_ids[--p->n_free];
        } else { /* evict the least recently released cached page */
            id = p->lru_head;
            lru_remove(p, id);
            unpublish(p, id);
        }
        p->pages[id].refs = 1;
        p->pages[id].lru_prev = p->pages[id].lru_next = -1;
        p->n_in_use++;
        ids[i] = id;
    }
    return SK_OK;
}

void sk_kv_pages_ref(sk_kv_pages *p, int32_t id) {
    SK_ASSERT(id >= 0 && id < p->n);
    page *g = &p->pages[id];
    if (g->refs == 0) { /* reviving a cached page */
        SK_ASSERT(g->published);
        lru_remove(p, id);
        p->n_in_use++;
    }
    g->refs++;
}

void sk_kv_pages_release(sk_kv_pages *p, int32_t id) {
    SK_ASSERT(id >= 0 && id < p->n);
    page *g = &p->pages[id];
    SK_ASSERT(g->refs > 0);
    if (--g->refs > 0) return;
    p->n_in_use--;
    if (g->published) lru_push(p, id);
    else p->free_ids[p->n_free++] = id;
}

uint64_t sk_kv_pages_hash(uint64_t parent, const int32_t *tokens, int n) {
    uint64_t h = parent ^ 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)(uint32_t)tokens[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    return h ? h : 1;
}

static int32_t find(const sk_kv_pages *p, uint64_t h, const int32_t *tokens) {
    for (int32_t id = p->buckets[h & (uint64_t)(p->n_buckets - 1)]; id >= 0; id = p->pages[id].hnext)
        if (p->pages[id].hash == h &&
            !memcmp(p->tokens + (size_t)id * p->page_size, tokens, sizeof(int32_t) * (size_t)p->page_size))
            return id;
    return -1;
}

uint64_t sk_kv_pages_publish(sk_kv_pages *p, int32_t id, uint64_t parent, const int32_t *tokens) {
    SK_ASSERT(id >= 0 && id < p->n && p->pages[id].refs > 0);
    uint64_t h = sk_kv_pages_hash(parent, tokens, p->page_size);
    page *g = &p->pages[id];
    if (g->published || find(p, h, tokens) >= 0) return h;
    memcpy(p->tokens + (size_t)id * p->page_size, tokens, sizeof(int32_t) * (size_t)p->page_size);
    g->hash = h;
    g->published = true;
    int32_t *b = &p->buckets[h & (uint64_t)(p->n_buckets - 1)];
    g->hnext = *b;
    *b = id;
    return h;
}

int32_t sk_kv_pages_lookup(sk_kv_pages *p, uint64_t parent, const int32_t *tokens, uint64_t *hash) {
    uint64_t h = sk_kv_pages_hash(parent, tokens, p->page_size);
    if (hash) *hash = h;
    int32_t id = find(p, h, tokens);
    if (id >= 0) sk_kv_pages_ref(p, id);
    return id;
}
