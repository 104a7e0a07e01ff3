/* DEQUANTIZE: int8 -> float32, computed in double like reference_ops::Dequantize. */
/* float results must not depend on the compiler fusing a*b+c into one FMA (TFLM rounds each step) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "ef_runtime.h"

int ef_dequantize(const ef_qdq_params *p, const int8_t *in, float *out) {
    int32_t i;
    const double scale = (double)p->scale;
    for (i = 0; i < p->count; ++i) out[i] = (float)(scale * (double)((int32_t)in[i] - p->zero_point));
    return 0;
}
