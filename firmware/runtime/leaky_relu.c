/* LEAKY_RELU, int8 (reference_ops::QuantizeLeakyRelu: identity and alpha rescales by sign of the input). */
#include "ef_quant.h"
#include "ef_unary.h"

static int8_t leaky1(const ef_act_params *p, int32_t x) {
    const int32_t input = x - p->in_zp;
    int32_t v;
    if (input >= 0) {
        v = ef_mbqm(input, p->mult, p->shift);
    } else {
        v = ef_mbqm(input, p->mult2, p->shift2);   /* |alpha| multiplier; radius = 1 marks a negative alpha */
        if (p->radius) v = -v;
    }
    return (int8_t)ef_clamp(v + p->out_zp, -128, 127);
}

int ef_leaky_relu(const ef_act_params *p, const int8_t *in, int8_t *out) {
    EF_MAP_INT8(p, in, out, leaky1);
    return 0;
}
