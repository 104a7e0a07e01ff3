/* SOFTMAX, float32 (reference_ops::Softmax: max-subtracted expf, sequential float sum, one division each). */
/* float results must not depend on the compiler fusing a*b+c into one FMA (TFLM rounds each step) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <math.h>

#include "ef_runtime.h"

int ef_softmax_f32(const ef_softmax_params *p, const float *in, float *out) {
    int32_t i, c;
    for (i = 0; i < p->outer; ++i) {
        const float *x = in + i * p->depth;
        float *y = out + i * p->depth;
        float mx = -3.402823466e38f, sum = 0.0f;
        for (c = 0; c < p->depth; ++c) mx = x[c] > mx ? x[c] : mx;
        for (c = 0; c < p->depth; ++c) {
            const float e = expf((x[c] - mx) * p->beta);
            y[c] = e;
            sum += e;
        }
        for (c = 0; c < p->depth; ++c) y[c] = y[c] / sum;
    }
    return 0;
}
