/* QUANTIZE: float32 -> int8 (reference_ops::AffineQuantize: round(x / scale) in float, half away from zero) and
 * int8 -> int8 requantisation (reference_ops::Requantize). No libm needed. */
/* float results must not depend on the compiler fusing a*b+c into one FMA (TFLM rounds each step) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "ef_quant.h"
#include "ef_runtime.h"

static float round_half_away(float x) {
    float t, d;
    if (x >= 16777216.0f || x <= -16777216.0f) return x;  /* already integral */
    t = (float)(int32_t)x;                                  /* truncation */
    d = x - t;                                              /* exact */
    if (d >= 0.5f) t += 1.0f;
    else if (d <= -0.5f) t -= 1.0f;
    return t;
}

int ef_quantize(const ef_qdq_params *p, const float *in, int8_t *out) {
    int32_t i;
    for (i = 0; i < p->count; ++i) {
        const float r = round_half_away(in[i] / p->scale);
        int32_t v;
        if (r > 1e9f) v = 127;
        else if (r < -1e9f) v = -128;
        else v = (int32_t)r + p->zero_point;
        out[i] = (int8_t)ef_clamp(v, -128, 127);
    }
    return 0;
}

int ef_requantize(const ef_qdq_params *p, const int8_t *in, int8_t *out) {
    int32_t i;
    for (i = 0; i < p->count; ++i) {
        const int32_t v = ef_mbqm(in[i] - p->in_zp, p->mult, p->shift) + p->zero_point;
        out[i] = (int8_t)ef_clamp(v, -128, 127);
    }
    return 0;
}
