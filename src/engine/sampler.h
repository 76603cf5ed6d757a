/* The engine's view of the sampler (include/saker/saker.h sk_sampler_*): sampling on the device.
 * A row can be drawn by a backend's sample op when its sampler has temp > 0, 1 <= top_k <=
 * SK_SAMPLE_MAX_K (and below the vocabulary) and no repetition penalty in force; the draw then
 * takes the same uniform from the sampler's generator that sk_sampler_sample would, so a request
 * gives the same tokens on either path (up to floating-point differences of the logits). */
#ifndef SK_ENGINE_SAMPLER_H
#define SK_ENGINE_SAMPLER_H

#include "backend/backend.h"
#include "saker/saker.h"

#include <stdbool.h>

bool sk_sampler_device_ok(const sk_sampler *s);
/* r = the parameters and the next uniform draw (advances the generator); device_ok must hold. */
void sk_sampler_device_row(sk_sampler *s, sk_sample_row *r);

#endif
