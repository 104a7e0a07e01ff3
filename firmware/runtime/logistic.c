/* LOGISTIC, int8 (reference_integer_ops::Logistic: gemmlowp fixed-point sigmoid on a Q4.27 input, output scale
 * 1/256 and zero point -128, which codegen checks). */
#include "ef_fixedpoint.h"
#include "ef_unary.h"

static int8_t logistic1(const ef_act_params *p, int32_t x) {
    const int32_t input = x - p->in_zp;
    int32_t q;
    if (input <= -p->radius) return -128;
    if (input >= p->radius) return 127;
    q = ef_fp_logistic(ef_mbqm(input, p->mult, p->shift), 4);
    return (int8_t)ef_clamp(ef_rdbpot(q, 31 - 8) - 128, -128, 127);
}

int ef_logistic(const ef_act_params *p, const int8_t *in, int8_t *out) {
    EF_MAP_INT8(p, in, out, logistic1);
    return 0;
}
