/* ADD / SUB / MUL / SQUARED_DIFFERENCE / DIV on float32 with broadcasting (mixed-precision exports). */
/* float results must not depend on the compiler fusing a*b+c into one FMA (TFLM rounds each step) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "ef_runtime.h"

int ef_f32_binary(const ef_f32_binary_params *p, const float *in1, const float *in2, float *out) {
    int32_t i, idx[EF_MAX_DIMS] = {0}, o1 = 0, o2 = 0;
    for (i = 0; i < p->b.count; ++i) {
        const float a = in1[o1], b = in2[o2];
        float r;
        switch (p->op) {
            case EF_F32_ADD: r = a + b; break;
            case EF_F32_SUB: r = a - b; break;
            case EF_F32_MUL: r = a * b; break;
            case EF_F32_SQDIFF: r = (a - b) * (a - b); break;
            default: r = a / b; break;
        }
        r = r < p->act_min ? p->act_min : (r > p->act_max ? p->act_max : r);
        out[i] = r;
        ef_bcast_offsets(&p->b, idx, &o1, &o2);
    }
    return 0;
}
