/* edgefold micro runtime: the shared inner kernel of CONV_2D and FULLY_CONNECTED (internal). */
#ifndef EF_MATMUL_H
#define EF_MATMUL_H

#include "ef_runtime.h"

/* Position of flattened element k inside a q15 column: groups of four are stored (0, 2, 1, 3) so that one
 * SXTB16 / SXTB16-ROR8 pair of a 4-byte weight load lines up with two 32-bit column loads; the K % 4 tail
 * stays in natural order. */
static inline int32_t ef_col_pos(int32_t k, int32_t k4) {
    static const int8_t perm[4] = {0, 2, 1, 3};
    return k < k4 ? ((k & ~3) | perm[k & 3]) : k;
}

/* int8 run -> q15 column with the input offset added, starting at flattened index k (k % 4 == 0 and n % 4 == 0
 * take the packed path). */
void ef_col_fill(int16_t *col, int32_t k, int32_t k4, const int8_t *src, int32_t n, int32_t offset);
void ef_col_zero(int16_t *col, int32_t k, int32_t k4, int32_t n);

/* For one or two q15 columns (col1 may be NULL): out[o] = requant(sum_k w[o][k] * col[k] + bias[o]). */
void ef_mm_cols(const int8_t *w, int32_t n_out, int32_t k_len, const int16_t *col0, const int16_t *col1,
                const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t per_channel,
                int32_t out_offset, int32_t act_min, int32_t act_max, int8_t *out0, int8_t *out1);

#endif
