/* edgefold micro runtime: fixed-point helpers, exactly the TFLite reference ("double rounding") arithmetic:
 * MultiplyByQuantizedMultiplier = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x << left, m), right). */
#ifndef EF_QUANT_H
#define EF_QUANT_H

#include <stdint.h>

#define EF_INLINE static inline
/* for kernel bodies instantiated per variant: -Os would otherwise keep one out-of-line copy with run-time flags */
#if defined(__GNUC__)
#define EF_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define EF_ALWAYS_INLINE static inline
#endif
/* for the per-variant instances of such bodies, kept out of line so that their live values stay in registers */
#if defined(__GNUC__)
#define EF_NOINLINE __attribute__((noinline))
#else
#define EF_NOINLINE
#endif

#if defined(__ARM_FEATURE_DSP) && !defined(EF_NO_DSP)
#include <arm_acle.h>
#define EF_DSP 1
#endif

/* The packed (dual 16-bit MAC) kernels run on the M4 DSP extension, or, for host testing of that very code path,
 * on portable emulations of the same instructions (-DEF_PACKED_EMULATE). */
#if defined(EF_DSP) || defined(EF_PACKED_EMULATE)
#define EF_PACKED 1
#endif

EF_INLINE int32_t ef_srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) return INT32_MAX;
    /* The reference computes (ab + nudge) / 2^31 with nudge = 2^30 or 1 - 2^30 by sign and truncating division;
     * for ab < 0 that equals floor((ab + 2^30) / 2^31), as it does for ab >= 0: one rounding add and an
     * arithmetic shift (what every C99 compiler we target does for a signed >>). */
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

EF_INLINE int32_t ef_rdbpot(int32_t x, int exponent) {
    const int32_t mask = (int32_t)((((uint32_t)1) << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier(int32 x, int32 multiplier, int shift) */
EF_INLINE int32_t ef_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
    const int left = shift > 0 ? (int)shift : 0;
    const int right = shift > 0 ? 0 : (int)-shift;
    return ef_rdbpot(ef_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* TFLite MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0) */
EF_INLINE int32_t ef_mbqm_small(int32_t x, int32_t multiplier, int32_t shift) {
    return ef_rdbpot(ef_srdhm(x, multiplier), (int)-shift);
}

/* SMMULR: (a * b + 2^31) >> 32, the rounded high word of the 64-bit product. */
EF_INLINE int32_t ef_smmulr(int32_t a, int32_t b) {
#if defined(EF_DSP)
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 31)) >> 32);
#endif
}

/* ef_mbqm, bit for bit, under preconditions the code generator checks per layer (its rq_fast flag):
 * multiplier > 0, shift <= -1 (exponent e = -shift >= 1) and |x| < 2^30. Then
 *   SRDHM(x, m) = floor((x m + 2^30) / 2^31) = SMMULR(2x, m)
 *   RoundingDivideByPOT(v, e) = floor((v + 2^(e-1) - (v < 0)) / 2^e)
 * which is 5 instructions on a Cortex-M4 instead of about 20. */
EF_INLINE int32_t ef_mbqm_fast(int32_t x, int32_t multiplier, int32_t exponent) {
    const int32_t v = ef_smmulr((int32_t)((uint32_t)x << 1), multiplier);
    return (v + (v >> 31) + ((int32_t)1 << (exponent - 1))) >> exponent;
}

/* ef_mbqm_fast with its rounding term precomputed: round = 2^(e-1) + z * 2^e returns ef_mbqm_fast(x) + z (adding a
 * multiple of 2^e commutes with the floor shift; the code generator checks that the sum cannot overflow). */
EF_INLINE int32_t ef_mbqm_fast_r(int32_t x, int32_t multiplier, int32_t exponent, int32_t round) {
    const int32_t v = ef_smmulr((int32_t)((uint32_t)x << 1), multiplier);
    return (v + (v >> 31) + round) >> exponent;
}

EF_INLINE int32_t ef_clamp(int32_t x, int32_t lo, int32_t hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

/* A channel's output from its channel_rq record {bias, multiplier, exponent, rounding + zero point} (ef_runtime.h),
 * before the clamp; `acc` already holds the bias. */
EF_INLINE int32_t ef_channel_rq(int32_t acc, const int32_t *record) {
    return ef_mbqm_fast_r(acc, record[1], record[2], record[3]);
}

/* An int16 value in both halves of a word: what SADD16 adds to a pair of q15 inputs. */
EF_INLINE int32_t ef_dup16(int32_t v) {
    return (int32_t)(((uint32_t)(uint16_t)(int16_t)v) * 0x10001u);
}

/* Saturate to int8: one SSAT on the M4. */
EF_INLINE int32_t ef_sat8(int32_t x) {
#if defined(EF_DSP)
    return __ssat(x, 8);
#else
    return ef_clamp(x, -128, 127);
#endif
}

/* The int8 output of a requantised value: one saturation where the activation range is all of int8 (`full`, a
 * compile-time constant in the kernel variants), else the clamp. */
EF_ALWAYS_INLINE int8_t ef_out8(int32_t v, int32_t lo, int32_t hi, const int full) {
    return (int8_t)(full ? ef_sat8(v) : ef_clamp(v, lo, hi));
}

/* Requantisation modes of ef_requant, a compile-time constant in each kernel variant. */
enum { EF_RQ_REF = 0, EF_RQ_FAST = 1, EF_RQ_FAST_FULL = 2 };

/* The output stage shared by the conv / FC / depthwise kernels: requantise, add the output zero point, clamp.
 * EF_RQ_REF: TFLite's MultiplyByQuantizedMultiplier; EF_RQ_FAST: ef_mbqm_fast (the layer's rq_fast flag);
 * EF_RQ_FAST_FULL: that, with an activation range that is all of int8 (no fused clamp narrower than the type),
 * so the clamp is one saturation. */
EF_ALWAYS_INLINE int8_t ef_requant(int32_t acc, int32_t multiplier, int32_t shift, int mode, int32_t out_offset,
                                   int32_t act_min, int32_t act_max) {
    const int32_t v = mode != EF_RQ_REF ? ef_mbqm_fast(acc, multiplier, -shift) : ef_mbqm(acc, multiplier, shift);
    if (mode == EF_RQ_FAST_FULL) return (int8_t)ef_sat8(v + out_offset);
    return (int8_t)ef_clamp(v + out_offset, act_min, act_max);
}

/* The mode a layer's parameters allow. */
EF_INLINE int ef_requant_mode(int32_t rq_fast, int32_t act_min, int32_t act_max) {
    if (!rq_fast) return EF_RQ_REF;
    return act_min <= -128 && act_max >= 127 ? EF_RQ_FAST_FULL : EF_RQ_FAST;
}

/* --- packed 16-bit helpers (SXTB16 / SMLAD / SADD16 semantics) --------------------------------------- */
#if defined(EF_DSP)
#define ef_sxtb16(x) ((int32_t)__sxtb16((uint32_t)(x)))
/* SXTB16 with its free ROR #8 operand (the ACLE has no intrinsic for the rotated form) */
EF_INLINE int32_t ef_sxtb16_ror8(int32_t x) {
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#define ef_smlad(a, b, acc) ((int32_t)__smlad((int16x2_t)(a), (int16x2_t)(b), (int32_t)(acc)))
#define ef_sadd16(a, b) ((int32_t)__sadd16((int16x2_t)(a), (int16x2_t)(b)))
#define ef_smlabb(a, b, acc) ((int32_t)__smlabb((int32_t)(a), (int32_t)(b), (int32_t)(acc)))
#define ef_smlatt(a, b, acc) ((int32_t)__smlatt((int32_t)(a), (int32_t)(b), (int32_t)(acc)))
#elif defined(EF_PACKED_EMULATE)
EF_INLINE int32_t ef_pack16(int32_t lo, int32_t hi) {
    return (int32_t)(((uint32_t)(uint16_t)(int16_t)lo) | (((uint32_t)(uint16_t)(int16_t)hi) << 16));
}
EF_INLINE int32_t ef_lo16(int32_t x) { return (int16_t)(uint16_t)((uint32_t)x & 0xffffu); }
EF_INLINE int32_t ef_hi16(int32_t x) { return (int16_t)(uint16_t)((uint32_t)x >> 16); }
EF_INLINE int32_t ef_sxtb16(int32_t x) {
    return ef_pack16((int8_t)(uint8_t)((uint32_t)x & 0xffu), (int8_t)(uint8_t)(((uint32_t)x >> 16) & 0xffu));
}
EF_INLINE int32_t ef_sxtb16_ror8(int32_t x) {
    return ef_pack16((int8_t)(uint8_t)(((uint32_t)x >> 8) & 0xffu), (int8_t)(uint8_t)(((uint32_t)x >> 24) & 0xffu));
}
EF_INLINE int32_t ef_smlad(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(ef_lo16(a) * ef_lo16(b)) + (uint32_t)(ef_hi16(a) * ef_hi16(b)));
}
EF_INLINE int32_t ef_sadd16(int32_t a, int32_t b) {
    return ef_pack16(ef_lo16(a) + ef_lo16(b), ef_hi16(a) + ef_hi16(b));
}
EF_INLINE int32_t ef_smlabb(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(ef_lo16(a) * ef_lo16(b)));
}
EF_INLINE int32_t ef_smlatt(int32_t a, int32_t b, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(ef_hi16(a) * ef_hi16(b)));
}
#endif

#endif /* EF_QUANT_H */
