/* edgefold micro runtime: gemmlowp's int32 fixed-point transcendental functions (internal), exactly as TFLite's
 * integer LOGISTIC / TANH / SOFTMAX reference kernels use them. A value is raw / 2^(31 - integer_bits); the
 * FixedPoint template's integer-bit bookkeeping becomes explicit shift arguments here. */
#ifndef EF_FIXEDPOINT_H
#define EF_FIXEDPOINT_H

#include "ef_quant.h"

/* gemmlowp::SaturatingRoundingMultiplyByPOT<exponent> on int32 */
EF_INLINE int32_t ef_fp_mul_pot(int32_t x, int exponent) {
    if (exponent < 0) return ef_rdbpot(x, -exponent);
    if (exponent > 0) {
        const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
        if (x > threshold) return INT32_MAX;
        if (x < -threshold) return INT32_MIN;
        return (int32_t)((uint32_t)x << exponent);
    }
    return x;
}

/* gemmlowp::RoundingHalfSum<int32> */
EF_INLINE int32_t ef_fp_half_sum(int32_t a, int32_t b) {
    const int64_t sum = (int64_t)a + (int64_t)b;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out */
EF_INLINE int32_t ef_fp_exp_quarter(int32_t a) {
    const int32_t constant_term = 1895147668;   /* exp(-1/8) */
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28);            /* Taylor expansion around -1/8 */
    const int32_t x2 = ef_srdhm(x, x), x3 = ef_srdhm(x2, x), x4 = ef_srdhm(x2, x2);
    const int32_t x4_over_4 = ef_fp_mul_pot(x4, -2);
    const int32_t poly = ef_fp_mul_pot(ef_srdhm(x4_over_4 + x3, one_third) + x2, -1);
    return constant_term + ef_srdhm(constant_term, x + poly);
}

/* gemmlowp::exp_on_negative_values: a (integer_bits) < 0 -> exp(a) in Q0.31 */
EF_INLINE int32_t ef_fp_exp_neg(int32_t a, int integer_bits) {
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int frac = 31 - integer_bits;
    const int32_t quarter = (int32_t)1 << (frac - 2);
    const int32_t a_mod = (a & (quarter - 1)) - quarter;
    const int32_t remainder = a_mod - a;
    int32_t result = ef_fp_exp_quarter(ef_fp_mul_pot(a_mod, integer_bits));
    int e;
    for (e = -2; e <= 4; ++e)
        if (integer_bits > e && (remainder & ((int32_t)1 << (frac + e)))) result = ef_srdhm(result, barrel[e + 2]);
    if (integer_bits > 5 && a < -((int32_t)1 << (36 - integer_bits))) result = 0;   /* below -32 */
    return a == 0 ? INT32_MAX : result;
}

/* Newton-Raphson 1 / (1 + x) (one_over) or (1 - x) / (1 + x) for x in (0, 1), Q0.31 in and out */
EF_INLINE int32_t ef_fp_nr_div(int32_t a, int one_minus) {
    const int32_t half_denominator = ef_fp_half_sum(a, INT32_MAX);
    const int32_t one_q2 = 1 << 29;
    int32_t x = 1515870810 + ef_srdhm(half_denominator, -1010580540);   /* 48/17 - 32/17 d, Q2.29 */
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t e = one_q2 - ef_srdhm(half_denominator, x);
        x = x + ef_fp_mul_pot(ef_srdhm(x, e), 2);
    }
    return one_minus ? ef_fp_mul_pot(x - one_q2, 2) : ef_fp_mul_pot(x, 1);
}

/* gemmlowp::logistic, input with integer_bits, result Q0.31 */
EF_INLINE int32_t ef_fp_logistic(int32_t a, int integer_bits) {
    int32_t pos;
    if (a == 0) return 1 << 30;
    pos = ef_fp_nr_div(ef_fp_exp_neg(a > 0 ? -a : a, integer_bits), 0);
    return a > 0 ? pos : INT32_MAX - pos;
}

/* gemmlowp::tanh, input with integer_bits, result Q0.31 */
EF_INLINE int32_t ef_fp_tanh(int32_t a, int integer_bits) {
    int32_t t;
    if (a == 0) return 0;
    t = ef_fp_nr_div(ef_fp_exp_neg(a < 0 ? a : -a, integer_bits + 1), 1);   /* exp(2a): one more integer bit */
    return a < 0 ? -t : t;
}

#endif /* EF_FIXEDPOINT_H */
