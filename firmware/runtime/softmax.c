/* SOFTMAX, float32 (reference_ops::Softmax: max-subtracted expf, sequential float sum, one division each) and int8
 * (reference_ops::Softmax, quantized: gemmlowp exp of Q5.26 differences, Q12.19 sum, fixed-point reciprocal). */
/* float results must not depend on the compiler fusing a*b+c into one FMA (TFLM rounds each step) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <math.h>

#include "ef_fixedpoint.h"
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

int ef_softmax(const ef_softmax_params *p, const int8_t *in, int8_t *out) {
    const int32_t depth = p->depth, diff_min = p->diff_min, mult = p->mult, left = p->left_shift;
    int32_t i, c;
    for (i = 0; i < p->outer; ++i) {
        const int8_t *x = in + i * depth;
        int8_t *y = out + i * depth;
        int32_t mx = -128, sum = 0, headroom, bits_over_unit, scale;
        for (c = 0; c < depth; ++c) mx = x[c] > mx ? x[c] : mx;
        for (c = 0; c < depth; ++c) {
            const int32_t diff = x[c] - mx;
            if (diff >= diff_min)   /* Q0.31 exp rescaled to Q12.19 */
                sum += ef_rdbpot(ef_fp_exp_neg(ef_srdhm((int32_t)((uint32_t)diff << left), mult), 5), 12);
        }
        /* GetReciprocal: 1 / sum as a Q0.31 scale and a power of two */
        headroom = 0;
        while (headroom < 32 && !(((uint32_t)sum << headroom) & 0x80000000u)) ++headroom;
        bits_over_unit = 12 - headroom;
        scale = ef_fp_nr_div((int32_t)(((uint32_t)sum << headroom) - 0x80000000u), 0);
        for (c = 0; c < depth; ++c) {
            const int32_t diff = x[c] - mx;
            int32_t v = -128;
            if (diff >= diff_min) {
                const int32_t e = ef_fp_exp_neg(ef_srdhm((int32_t)((uint32_t)diff << left), mult), 5);
                v = ef_clamp(ef_rdbpot(ef_srdhm(scale, e), bits_over_unit + 31 - 8) - 128, -128, 127);
            }
            y[c] = (int8_t)v;
        }
    }
    return 0;
}
