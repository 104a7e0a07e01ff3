/* edgefold micro runtime: the shared inner kernel of CONV_2D and FULLY_CONNECTED (internal). */
#ifndef EF_MATMUL_H
#define EF_MATMUL_H

#include "ef_quant.h"
#include "ef_runtime.h"

/* Two q15 columns (input + offset) of k_len elements live interleaved in one int32 buffer of 2 * k_len int16:
 * for every group of four elements g: [col0 (k0,k2)] [col0 (k1,k3)] [col1 (k0,k2)] [col1 (k1,k3)], so that one
 * 16-byte load feeds the four SMLADs of a 2x2 (channel x pixel) block and one SXTB16 / SXTB16-ROR8 pair of a
 * 4-byte weight load lines up with it. The k_len % 4 tail follows, column 0 then column 1, in natural order. */
EF_INLINE int32_t ef_col_index(int32_t k, int32_t k_len, int32_t which) {
    static const int8_t perm[4] = {0, 2, 1, 3};
    const int32_t k4 = k_len & ~3;
    return k < k4 ? ((k >> 2) * 8 + which * 4 + perm[k & 3]) : (k4 * 2 + which * (k_len - k4) + (k - k4));
}

/* int8 run (n elements, starting at flattened index k) -> column `which`, input offset added. */
void ef_col_fill(int32_t *cols, int32_t which, int32_t k, int32_t k_len, const int8_t *src, int32_t n,
                 int32_t offset);
/* zero-point padding: (zp + offset) == 0 */
void ef_col_zero(int32_t *cols, int32_t which, int32_t k, int32_t k_len, int32_t n);

/* The output stage of ef_mm_cols: bias (may be NULL), per-channel or per-tensor requantisation (the short form
 * where rq_fast), zero point, clamp; or, where rq (the layer's channel_rq records, ef_runtime.h) is set, the short
 * requantisation from those. */
typedef struct {
    const int32_t *bias, *mult, *shift;
    int32_t per_channel, out_offset, act_min, act_max, rq_fast;
    const int32_t *rq;
} ef_mm_out;

/* out0[o] (and out1[o] if two) = requant(sum_k w[o][k] * col[k] + bias[o]) for every output channel o. */
void ef_mm_cols(const int8_t *w, int32_t n_out, int32_t k_len, const int32_t *cols, int two, const ef_mm_out *q,
                int8_t *out0, int8_t *out1);

#endif
