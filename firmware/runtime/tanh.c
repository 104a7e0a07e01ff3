/* TANH, int8 (reference_integer_ops::Tanh: gemmlowp fixed-point tanh on a Q4.27 input, output scale 1/128 and
 * zero point 0 taken as given, as TFLM does). */
#include "ef_fixedpoint.h"
#include "ef_unary.h"

static int8_t tanh1(const ef_act_params *p, int32_t x) {
    const int32_t input = x - p->in_zp;
    int32_t q;
    if (input <= -p->radius) return -128;
    if (input >= p->radius) return 127;
    q = ef_fp_tanh(ef_mbqm(input, p->mult, p->shift), 4);
    return (int8_t)ef_clamp(ef_rdbpot(q, 31 - 7), -128, 127);
}

int ef_tanh(const ef_act_params *p, const int8_t *in, int8_t *out) {
    EF_MAP_INT8(p, in, out, tanh1);
    return 0;
}
