/* BATCH_MATMUL, int8 (reference_ops::BatchMatMul with per-tensor requantisation) and float32. */
/* float results must not depend on the compiler fusing a*b+c into one FMA (TFLM rounds each step) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "ef_quant.h"
#include "ef_runtime.h"

int ef_batch_matmul(const ef_bmm_params *p, const int8_t *lhs, const int8_t *rhs, int8_t *out) {
    int32_t b, r, c, k;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *l = lhs + b * p->lhs_batch_stride, *rb = rhs + b * p->rhs_batch_stride;
        for (r = 0; r < p->rows; ++r)
            for (c = 0; c < p->cols; ++c) {
                int32_t acc = 0;
                for (k = 0; k < p->inner; ++k)
                    acc += (l[r * p->inner + k] + p->lhs_offset) *
                           (rb[k * p->rhs_row_stride + c * p->rhs_col_stride] + p->rhs_offset);
                acc = ef_mbqm(acc, p->mult, p->shift) + p->out_offset;
                *out++ = (int8_t)ef_clamp(acc, p->act_min, p->act_max);
            }
    }
    return 0;
}

int ef_batch_matmul_f32(const ef_bmm_params *p, const float *lhs, const float *rhs, float *out) {
    int32_t b, r, c, k;
    for (b = 0; b < p->batches; ++b) {
        const float *l = lhs + b * p->lhs_batch_stride, *rb = rhs + b * p->rhs_batch_stride;
        for (r = 0; r < p->rows; ++r)
            for (c = 0; c < p->cols; ++c) {
                float acc = 0.0f;
                for (k = 0; k < p->inner; ++k)
                    acc += l[r * p->inner + k] * rb[k * p->rhs_row_stride + c * p->rhs_col_stride];
                *out++ = acc;
            }
    }
    return 0;
}
