/* SUB, int8 (reference_ops::SubElementwise: both inputs rescaled to a common 2^20-scaled domain, then subtracted). */
#include "ef_quant.h"
#include "ef_runtime.h"

static inline int8_t sub1(const ef_add_params *p, int32_t x, int32_t y) {
    const int32_t a = ef_mbqm_small((x + p->in1_offset) * (1 << p->left_shift), p->in1_mult, p->in1_shift);
    const int32_t b = ef_mbqm_small((y + p->in2_offset) * (1 << p->left_shift), p->in2_mult, p->in2_shift);
    const int32_t r = ef_mbqm_small(a - b, p->out_mult, p->out_shift) + p->out_offset;
    return (int8_t)ef_clamp(r, p->act_min, p->act_max);
}

/* Element i is written after both inputs' element i is read: the output may alias either input. */
int ef_sub(const ef_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    int32_t i, idx[EF_MAX_DIMS] = {0}, o1 = 0, o2 = 0;
    const int32_t n = p->b.count;
    if (!p->b.broadcast) {
        for (i = 0; i < n; ++i) out[i] = sub1(p, in1[i], in2[i]);
        return 0;
    }
    for (i = 0; i < n; ++i) {
        out[i] = sub1(p, in1[o1], in2[o2]);
        ef_bcast_offsets(&p->b, idx, &o1, &o2);
    }
    return 0;
}
