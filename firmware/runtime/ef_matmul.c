/* edgefold micro runtime: packed int8 x q15 dot products (SMLAD on Cortex-M4, emulated on hosts for tests). */
#include "ef_matmul.h"

#include "ef_quant.h"

#if defined(EF_PACKED)

void ef_col_zero(int16_t *col, int32_t k, int32_t k4, int32_t n) {
    int32_t i;
    if ((k & 3) == 0 && (n & 3) == 0) {
        for (i = 0; i < n; ++i) col[k + i] = 0;   /* whole groups: the permutation stays inside the run */
    } else {
        for (i = 0; i < n; ++i) col[ef_col_pos(k + i, k4)] = 0;  /* zero-point padding: (zp + offset) == 0 */
    }
}

void ef_col_fill(int16_t *col, int32_t k, int32_t k4, const int8_t *src, int32_t n, int32_t offset) {
    int32_t i = 0;
    if ((k & 3) == 0) {
        const int32_t off2 = (int32_t)(((uint32_t)(uint16_t)(int16_t)offset) * 0x10001u);
        for (; i + 4 <= n && k + i + 4 <= k4; i += 4) {
            const int32_t v = ef_read32(src + i);
            const int32_t lo = ef_sadd16(ef_sxtb16(v), off2);
            const int32_t hi = ef_sadd16(ef_sxtb16_ror8(v), off2);
            memcpy(col + k + i, &lo, 4);
            memcpy(col + k + i + 2, &hi, 4);
        }
    }
    for (; i < n; ++i) col[ef_col_pos(k + i, k4)] = (int16_t)(src[i] + offset);
}

static inline int32_t requant(int32_t acc, const int32_t *bias, int32_t o, int32_t m, int32_t s, int32_t out_offset,
                              int32_t act_min, int32_t act_max) {
    if (bias) acc += bias[o];
    return ef_clamp(ef_mbqm(acc, m, s) + out_offset, act_min, act_max);
}

void ef_mm_cols(const int8_t *w, int32_t n_out, int32_t k_len, const int16_t *col0, const int16_t *col1,
                const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t per_channel,
                int32_t out_offset, int32_t act_min, int32_t act_max, int8_t *out0, int8_t *out1) {
    const int32_t k4 = k_len & ~3;
    int32_t o = 0;
    const int16_t *c1 = col1 ? col1 : col0;   /* single column: compute it twice, store once */
    for (; o + 2 <= n_out; o += 2) {
        const int8_t *wa = w + o * k_len;
        const int8_t *wb = wa + k_len;
        int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;
        int32_t k;
        for (k = 0; k < k4; k += 4) {
            const int32_t va = ef_read32(wa + k), vb = ef_read32(wb + k);
            const int32_t x0 = ef_read32(col0 + k), x1 = ef_read32(col0 + k + 2);
            const int32_t y0 = ef_read32(c1 + k), y1 = ef_read32(c1 + k + 2);
            const int32_t wa02 = ef_sxtb16(va), wa13 = ef_sxtb16_ror8(va);
            const int32_t wb02 = ef_sxtb16(vb), wb13 = ef_sxtb16_ror8(vb);
            a0 = ef_smlad(wa02, x0, a0);
            a0 = ef_smlad(wa13, x1, a0);
            a1 = ef_smlad(wa02, y0, a1);
            a1 = ef_smlad(wa13, y1, a1);
            b0 = ef_smlad(wb02, x0, b0);
            b0 = ef_smlad(wb13, x1, b0);
            b1 = ef_smlad(wb02, y0, b1);
            b1 = ef_smlad(wb13, y1, b1);
        }
        for (; k < k_len; ++k) {
            a0 += wa[k] * col0[k];
            a1 += wa[k] * c1[k];
            b0 += wb[k] * col0[k];
            b1 += wb[k] * c1[k];
        }
        {
            const int32_t ma = mult[per_channel ? o : 0], sa = shift[per_channel ? o : 0];
            const int32_t mb = mult[per_channel ? o + 1 : 0], sb = shift[per_channel ? o + 1 : 0];
            out0[o] = (int8_t)requant(a0, bias, o, ma, sa, out_offset, act_min, act_max);
            out0[o + 1] = (int8_t)requant(b0, bias, o + 1, mb, sb, out_offset, act_min, act_max);
            if (col1) {
                out1[o] = (int8_t)requant(a1, bias, o, ma, sa, out_offset, act_min, act_max);
                out1[o + 1] = (int8_t)requant(b1, bias, o + 1, mb, sb, out_offset, act_min, act_max);
            }
        }
    }
    for (; o < n_out; ++o) {
        const int8_t *wa = w + o * k_len;
        int32_t a0 = 0, a1 = 0, k;
        for (k = 0; k < k4; k += 4) {
            const int32_t va = ef_read32(wa + k);
            const int32_t wa02 = ef_sxtb16(va), wa13 = ef_sxtb16_ror8(va);
            a0 = ef_smlad(wa02, ef_read32(col0 + k), a0);
            a0 = ef_smlad(wa13, ef_read32(col0 + k + 2), a0);
            a1 = ef_smlad(wa02, ef_read32(c1 + k), a1);
            a1 = ef_smlad(wa13, ef_read32(c1 + k + 2), a1);
        }
        for (; k < k_len; ++k) {
            a0 += wa[k] * col0[k];
            a1 += wa[k] * c1[k];
        }
        {
            const int32_t m = mult[per_channel ? o : 0], s = shift[per_channel ? o : 0];
            out0[o] = (int8_t)requant(a0, bias, o, m, s, out_offset, act_min, act_max);
            if (col1) out1[o] = (int8_t)requant(a1, bias, o, m, s, out_offset, act_min, act_max);
        }
    }
}

#else
typedef int ef_matmul_unused; /* ISO C forbids an empty translation unit */
#endif
