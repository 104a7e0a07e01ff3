/* MUL, int8 (TFLite reference_integer_ops::Mul semantics). */
#include "ef_quant.h"
#include "ef_runtime.h"

int ef_mul(const ef_mul_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    int32_t i, idx[EF_MAX_DIMS] = {0}, o1 = 0, o2 = 0;
    for (i = 0; i < p->b.count; ++i) {
        const int32_t prod = (in1[o1] + p->in1_offset) * (in2[o2] + p->in2_offset);
        const int32_t r = ef_mbqm(prod, p->out_mult, p->out_shift) + p->out_offset;
        out[i] = (int8_t)ef_clamp(r, p->act_min, p->act_max);
        ef_bcast_offsets(&p->b, idx, &o1, &o2);
    }
    return 0;
}
