/* Synthetic models by name (--shape): published configurations with weights drawn on the
 * backend, for measuring big models without a checkpoint. */
#ifndef SK_SHAPES_H
#define SK_SHAPES_H

#include "model/model_file.h"

#include <math.h>

/* Comma-separated list of the known names. */
const char *sk_shape_names(void);
/* Fills mf with shape `name`'s description and data-less tensors of type `type` for the
 * matrices (vectors are F32). SK_ERR_ARG naming the known shapes when the name is unknown. */
sk_status sk_shape_model_file(const char *name, sk_dtype type, bool int4, int n_layers,
                              sk_model_file *mf);
/* Mean and standard deviation that a synthetic tensor's values are drawn with. */
void sk_shape_init_params(const sk_tensor *t, float *mean, float *std);

#endif
