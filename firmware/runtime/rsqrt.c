/* RSQRT, float32 (1 / sqrt(x), as the TFLM elementwise kernel). */
/* float results must not depend on the compiler fusing a*b+c into one FMA (TFLM rounds each step) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <math.h>

#include "ef_runtime.h"

int ef_rsqrt_f32(const ef_unary_params *p, const float *in, float *out) {
    int32_t i;
    for (i = 0; i < p->count; ++i) out[i] = 1.0f / sqrtf(in[i]);
    return 0;
}
