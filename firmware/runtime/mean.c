/* MEAN over contiguous axes, int8 (TFLite reference_ops::QuantizedMeanOrSum) and float32 (reference_ops::Mean:
 * sequential float sum in input order, then one division). */
/* float results must not depend on the compiler fusing a*b+c into one FMA (TFLM rounds each step) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "ef_quant.h"
#include "ef_runtime.h"

int ef_mean(const ef_mean_params *p, const int8_t *in, int8_t *out) {
    int32_t o, i, r;
    for (o = 0; o < p->outer; ++o) {
        for (i = 0; i < p->inner; ++i) {
            const int8_t *x = in + o * p->reduce * p->inner + i;
            int32_t sum = 0, v;
            for (r = 0; r < p->reduce; ++r) sum += x[r * p->inner];
            v = ef_mbqm(sum - p->in_zp * p->reduce, p->mult, p->shift) + p->out_zp;
            out[o * p->inner + i] = (int8_t)ef_clamp(v, -128, 127);
        }
    }
    return 0;
}

int ef_mean_f32(const ef_mean_params *p, const float *in, float *out) {
    int32_t o, i, r;
    for (o = 0; o < p->outer; ++o) {
        for (i = 0; i < p->inner; ++i) {
            const float *x = in + o * p->reduce * p->inner + i;
            float sum = 0.0f;
            for (r = 0; r < p->reduce; ++r) sum += x[r * p->inner];
            out[o * p->inner + i] = sum / (float)p->reduce;
        }
    }
    return 0;
}
