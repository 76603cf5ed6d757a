/* KV page manager: the bookkeeping of a paged KV cache pool (which pages are free, who uses
 * them, which full pages hold a known token prefix). The backend owns the memory; this module
 * hands out page ids.
 *
 * - Pages are reference counted: a sequence holds a reference to each page in its page table.
 * - Prefix caching: a FULL page can be published under the hash of its token ids chained with
 *   the hash of all previous pages of the sequence (so equal hashes mean equal prefixes, up to
 *   64-bit collisions, which the stored tokens rule out). A later request looks pages up by the
 *   same chained hash and shares them (reference +1) instead of recomputing.
 * - A published page whose reference count drops to zero stays cached (evictable); allocation
 *   takes never-used/free pages first, then evicts cached pages least recently released first.
 * Not thread-safe: the engine thread owns it. */
#ifndef SK_KV_PAGES_H
#define SK_KV_PAGES_H

#include "core/status.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct sk_kv_pages sk_kv_pages;

/* n_pages pages of page_size tokens each. */
sk_status sk_kv_pages_new(int n_pages, int page_size, sk_kv_pages **out);
void sk_kv_pages_free(sk_kv_pages *p);

int sk_kv_pages_page_size(const sk_kv_pages *p);
int sk_kv_pages_total(const sk_kv_pages *p);
/* Pages that an allocation could take now (free + cached-and-unreferenced). */
int sk_kv_pages_available(const sk_kv_pages *p);
/* Pages referenced by at least one holder. */
int sk_kv_pages_in_use(const sk_kv_pages *p);

/* Takes n pages (reference count 1 each) into ids[n]. All or nothing: SK_ERR_CONTEXT with a
 * message when fewer than n are available. */
sk_status sk_kv_pages_alloc(sk_kv_pages *p, int n, int32_t *ids);
/* Adds a reference to a page (sharing). */
void sk_kv_pages_ref(sk_kv_pages *p, int32_t id);
/* Drops a reference; at zero the page becomes free (or cached, if published). */
void sk_kv_pages_release(sk_kv_pages *p, int32_t id);

/* Chained hash of a full page: hash(parent, tokens[page_size]). parent = 0 for the first page. */
uint64_t sk_kv_pages_hash(uint64_t parent, const int32_t *tokens, int n);
/* Publishes page id (full, holding tokens[page_size] after the prefix hashed by parent) under
 * its chained hash, which is returned. Publishing a page whose hash is already published keeps
 * the existing entry (returns the hash; the page stays private). */
uint64_t sk_kv_pages_publish(sk_kv_pages *p, int32_t id, uint64_t parent, const int32_t *tokens);
/* Looks up the page holding tokens[page_size] after the prefix hashed by parent; on a hit takes
 * a reference and returns its id (and the chained hash in *hash), else -1. */
int32_t sk_kv_pages_lookup(sk_kv_pages *p, uint64_t parent, const int32_t *tokens, uint64_t *hash);

#endif
