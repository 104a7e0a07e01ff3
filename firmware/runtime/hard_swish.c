/* HARD_SWISH, int8 (reference_ops::HardSwish, quantized: 16-bit fixed point, x * relu6(x + 3) / 6). */
#include "ef_quant.h"
#include "ef_unary.h"

static int32_t sat16(int64_t v) { return (int32_t)(v < -32768 ? -32768 : (v > 32767 ? 32767 : v)); }

/* gemmlowp::SaturatingRoundingDoublingHighMul<int16> */
static int32_t srdhm16(int32_t a, int32_t b) {
    const int32_t ab = a * b;
    if (a == b && a == -32768) return 32767;
    return (int16_t)((ab + (ab >= 0 ? (1 << 14) : (1 - (1 << 14)))) / (1 << 15));
}

/* SaturatingDoublingHighMul: truncating, cancels the bias of the rounding multiply above */
static int32_t sdhm16(int32_t a, int32_t b) {
    if (a == b && a == -32768) return 32767;
    return (int16_t)((a * b) / (1 << 15));
}

static int8_t hard_swish1(const ef_act_params *p, int32_t x) {
    const int32_t hires = (int16_t)((x - p->in_zp) * (1 << 7));
    const int32_t preshift_out = srdhm16(hires, p->mult);          /* output multiplier, Q0.15 */
    int32_t reluish = hires, out;
    if (p->shift2 > 0) reluish = sat16((int64_t)reluish * ((int64_t)1 << (p->shift2 - 1)));
    reluish = srdhm16(reluish, p->mult2);                          /* reluish multiplier, Q0.15 */
    if (p->shift2 > 0) reluish = sat16((int64_t)reluish * 2);
    if (p->shift2 < 0) reluish = ef_rdbpot(reluish, -p->shift2);
    reluish = (int16_t)((reluish + (1 << 15)) >> 1);               /* [-1, 1] -> [0, 1] */
    out = (int16_t)(ef_rdbpot(sdhm16(reluish, preshift_out), -p->shift) + p->out_zp);   /* int16 sum, as TFLite */
    return (int8_t)ef_clamp(out, -128, 127);
}

int ef_hard_swish(const ef_act_params *p, const int8_t *in, int8_t *out) {
    EF_MAP_INT8(p, in, out, hard_swish1);
    return 0;
}
