/* RSQRT, float32 (1 / sqrt(x), as the TFLM elementwise kernel). */
#include <math.h>

#include "ef_runtime.h"

int ef_rsqrt_f32(const ef_unary_params *p, const float *in, float *out) {
    int32_t i;
    for (i = 0; i < p->count; ++i) out[i] = 1.0f / sqrtf(in[i]);
    return 0;
}
