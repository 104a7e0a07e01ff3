/* RSQRT: float32 (1 / sqrt(x), as the TFLM elementwise kernel) and int8 (TFLM's integer path: a Newton-Raphson
 * inverse square root of the offset input, then the 1 / (sqrt(in_scale) * out_scale) rescale codegen computes). */
/* float results must not depend on the compiler fusing a*b+c into one FMA (TFLM rounds each step) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <math.h>

#include "ef_fixedpoint.h"
#include "ef_unary.h"

int ef_rsqrt_f32(const ef_unary_params *p, const float *in, float *out) {
    int32_t i;
    for (i = 0; i < p->count; ++i) out[i] = 1.0f / sqrtf(in[i]);
    return 0;
}

/* 1 / sqrt(v) for v >= 2 as a Q0.31 multiplier and a left shift (GetInvSqrtQuantizedMultiplierExp, reverse shift):
 * v is first brought into [2^27, 2^29) by whole bit pairs, so the root of the scale factor is an exact shift; the
 * Newton steps x <- x (3 - v x^2) / 2 then run in Q3.28 from x = 1. */
static void inv_sqrt(int32_t v, int32_t *mult, int32_t *left_shift) {
    int32_t shift = 11, x = 1 << 28, half_v, k;
    int32_t shift_down = 0;
    const int32_t three_halves = (1 << 28) + (1 << 27);   /* 1.5 in Q3.28 */
    const int32_t half_sqrt2 = 1518500250;                /* sqrt(2) / 2 in Q0.31 */
    if (v <= 1) {
        *mult = INT32_MAX;
        *left_shift = 0;
        return;
    }
    while (v >= (1 << 29)) {
        v /= 4;
        ++shift;
    }
    while (v < (1 << 27)) {
        v <<= 2;
        ++shift_down;
    }
    shift -= shift_down;
    half_v = ef_fp_mul_pot(v >> 1, -1);   /* v / 2 in Q3.28 */
    for (k = 0; k < 5; ++k) {
        /* x^3: Q3 * Q3 -> Q6, Q6 * Q3 -> Q9, back to Q3 */
        const int32_t x3 = ef_fp_mul_pot(ef_srdhm(ef_srdhm(x, x), x), 6);
        /* 1.5 x - (v / 2) x^3: both products Q6, difference back to Q3 */
        x = ef_fp_mul_pot((int32_t)((uint32_t)ef_srdhm(three_halves, x) - (uint32_t)ef_srdhm(half_v, x3)), 3);
    }
    x = ef_srdhm(x, half_sqrt2);
    if (shift < 0) {
        x = (int32_t)((uint32_t)x << -shift);
        shift = 0;
    }
    *mult = x;
    *left_shift = -shift;
}

static int8_t rsqrt1(const ef_act_params *p, int32_t q) {
    /* the integer root works on value * 2^20 so that small results keep their bits through the final rescale */
    const int32_t extra = 20;
    const int32_t value = q - p->in_zp;
    int32_t m, s, root;
    if (value == 0) return 127;   /* 1 / sqrt(0): the largest output */
    inv_sqrt(value, &m, &s);
    root = ef_mbqm(1, m, s + extra);
    return (int8_t)ef_clamp(ef_mbqm(root, p->mult, p->shift - extra) + p->out_zp, -128, 127);
}

int ef_rsqrt(const ef_act_params *p, const int8_t *in, int8_t *out) {
    int32_t i;
    /* TFLM rejects negative values (below the input zero point) rather than produce a number */
    for (i = 0; i < p->count; ++i)
        if (in[i] < p->in_zp) return -1;
    EF_MAP_INT8(p, in, out, rsqrt1);
    return 0;
}
