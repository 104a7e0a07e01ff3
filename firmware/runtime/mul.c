/* MUL, int8 (TFLite reference_integer_ops::Mul semantics). */
#include "ef_quant.h"
#include "ef_runtime.h"

/* Row by row over the innermost dim (per-channel scales against an image are the common broadcast). The product
 * of two offset int8 values is below 2^16, so the short requantisation applies whenever the shift is <= -1. */
int ef_mul(const ef_mul_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    const int32_t n = p->b.count, row = p->b.shape[p->b.ndim - 1];
    const int32_t s1 = p->b.stride1[p->b.ndim - 1], s2 = p->b.stride2[p->b.ndim - 1];
    const int32_t off1 = p->in1_offset, off2 = p->in2_offset, m = p->out_mult, sh = p->out_shift;
    const int32_t oo = p->out_offset, lo = p->act_min, hi = p->act_max;
    const int fast = m > 0 && sh <= -1;
    int32_t i, j, idx[EF_MAX_DIMS] = {0}, o1 = 0, o2 = 0;
    for (i = 0; i < n; i += row) {
        const int8_t *x = in1 + o1, *y = in2 + o2;
        if (fast)
            for (j = 0; j < row; ++j)
                out[i + j] = ef_requant((x[j * s1] + off1) * (y[j * s2] + off2), m, sh, EF_RQ_FAST, oo, lo, hi);
        else
            for (j = 0; j < row; ++j)
                out[i + j] = ef_requant((x[j * s1] + off1) * (y[j * s2] + off2), m, sh, EF_RQ_REF, oo, lo, hi);
        ef_bcast_next_row(&p->b, idx, &o1, &o2);
    }
    return 0;
}
