/* RELU and RELU6, int8, as TFLM runs them when they are not fused into the producer (e.g. DenseNet's pre-activation
 * after a concatenation). RELU rescales (reference ReluQuantized: out_zp + x * in/out scale, clamped at zero);
 * RELU6 keeps the input's quantisation and only clamps to [q(0), q(6)] (Relu6Quantized). */
#include "ef_quant.h"
#include "ef_unary.h"

static int8_t relu1(const ef_act_params *p, int32_t x) {
    const int32_t v = p->out_zp + ef_mbqm(x - p->in_zp, p->mult, p->shift);
    return (int8_t)ef_clamp(v, p->act_min, p->act_max);
}

static int8_t relu6_1(const ef_act_params *p, int32_t x) {
    return (int8_t)ef_clamp(x, p->act_min, p->act_max);
}

int ef_relu(const ef_act_params *p, const int8_t *in, int8_t *out) {
    EF_MAP_INT8(p, in, out, relu1);
    return 0;
}

int ef_relu6(const ef_act_params *p, const int8_t *in, int8_t *out) {
    EF_MAP_INT8(p, in, out, relu6_1);
    return 0;
}
