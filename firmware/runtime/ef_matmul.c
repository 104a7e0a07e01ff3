/* edgefold micro runtime: packed int8 x q15 dot products (SMLAD on Cortex-M4, emulated on hosts for tests). */
#include "ef_matmul.h"

#include "ef_quant.h"

#if defined(EF_PACKED)

EF_INLINE void put16(int32_t *cols, int32_t idx, int32_t v) {
    const int16_t h = (int16_t)v;
    memcpy((int16_t *)(void *)cols + idx, &h, 2);
}

void ef_col_zero(int32_t *cols, int32_t which, int32_t k, int32_t k_len, int32_t n) {
    int32_t i = 0;
    const int32_t k4 = k_len & ~3;
    int32_t *g;
    for (; i < n && ((k + i) & 3) != 0; ++i) put16(cols, ef_col_index(k + i, k_len, which), 0);
    g = cols + ((k + i) >> 2) * 4 + which * 2;
    for (; i + 4 <= n && k + i + 4 <= k4; i += 4, g += 4) g[0] = g[1] = 0;
    for (; i < n; ++i) put16(cols, ef_col_index(k + i, k_len, which), 0);
}

void ef_col_fill(int32_t *cols, int32_t which, int32_t k, int32_t k_len, const int8_t *src, int32_t n,
                 int32_t offset) {
    int32_t i = 0;
    const int32_t k4 = k_len & ~3;
    const int32_t off2 = (int32_t)(((uint32_t)(uint16_t)(int16_t)offset) * 0x10001u);
    int32_t *g;
    for (; i < n && ((k + i) & 3) != 0; ++i) put16(cols, ef_col_index(k + i, k_len, which), src[i] + offset);
    g = cols + ((k + i) >> 2) * 4 + which * 2;
    for (; i + 4 <= n && k + i + 4 <= k4; i += 4, g += 4) {
        const int32_t v = ef_read32(src + i);
        g[0] = ef_sadd16(ef_sxtb16(v), off2);
        g[1] = ef_sadd16(ef_sxtb16_ror8(v), off2);
    }
    for (; i < n; ++i) put16(cols, ef_col_index(k + i, k_len, which), src[i] + offset);
}

EF_INLINE int16_t get16(const int32_t *cols, int32_t idx) {
    int16_t h;
    memcpy(&h, (const int16_t *)(const void *)cols + idx, 2);
    return h;
}

/* One body per requantisation mode (a constant at each call). Accumulators start at the bias; a
 * 2 (channel) x 2 (pixel) block shares every weight and column load. */
EF_ALWAYS_INLINE void mm_cols(const int8_t *w, int32_t n_out, int32_t k_len, const int32_t *cols, int two,
                              const ef_mm_out *q, int8_t *out0, int8_t *out1, const int mode) {
    const int32_t k4 = k_len & ~3, groups = k4 >> 2;
    const int32_t tail = k_len - k4, tail_base = k4 * 2;
    const int32_t *bias = q->bias, *mult = q->mult, *shift = q->shift;
    const int32_t per_channel = q->per_channel, oo = q->out_offset, lo = q->act_min, hi = q->act_max;
    int32_t o = 0;
    for (; o < n_out; o += 2) {
        const int pair = o + 1 < n_out;
        const int32_t ob = o + pair;   /* odd channel count: compute the last one twice, store it once */
        const int8_t *wa = w + o * k_len;
        const int8_t *wb = w + ob * k_len;
        const int32_t *c = cols;
        int32_t a0 = bias ? bias[o] : 0, b0 = bias ? bias[ob] : 0, a1 = a0, b1 = b0, g, t;
        for (g = 0; g < groups; ++g, c += 4, wa += 4, wb += 4) {
            const int32_t va = ef_read32(wa), vb = ef_read32(wb);
            const int32_t x0 = c[0], x1 = c[1], y0 = c[2], y1 = c[3];
            int32_t s = ef_sxtb16(va);
            a0 = ef_smlad(s, x0, a0);
            a1 = ef_smlad(s, y0, a1);
            s = ef_sxtb16_ror8(va);
            a0 = ef_smlad(s, x1, a0);
            a1 = ef_smlad(s, y1, a1);
            s = ef_sxtb16(vb);
            b0 = ef_smlad(s, x0, b0);
            b1 = ef_smlad(s, y0, b1);
            s = ef_sxtb16_ror8(vb);
            b0 = ef_smlad(s, x1, b0);
            b1 = ef_smlad(s, y1, b1);
        }
        for (t = 0; t < tail; ++t) {
            const int32_t x = get16(cols, tail_base + t), y = get16(cols, tail_base + tail + t);
            a0 += wa[t] * x;
            a1 += wa[t] * y;
            b0 += wb[t] * x;
            b1 += wb[t] * y;
        }
        {
            const int32_t ma = mult[per_channel ? o : 0], sa = shift[per_channel ? o : 0];
            out0[o] = ef_requant(a0, ma, sa, mode, oo, lo, hi);
            if (two) out1[o] = ef_requant(a1, ma, sa, mode, oo, lo, hi);
            if (pair) {
                const int32_t mb = mult[per_channel ? ob : 0], sb = shift[per_channel ? ob : 0];
                out0[ob] = ef_requant(b0, mb, sb, mode, oo, lo, hi);
                if (two) out1[ob] = ef_requant(b1, mb, sb, mode, oo, lo, hi);
            }
        }
    }
}

void ef_mm_cols(const int8_t *w, int32_t n_out, int32_t k_len, const int32_t *cols, int two, const ef_mm_out *q,
                int8_t *out0, int8_t *out1) {
    switch (ef_requant_mode(q->rq_fast, q->act_min, q->act_max)) {
    case EF_RQ_FAST_FULL: mm_cols(w, n_out, k_len, cols, two, q, out0, out1, EF_RQ_FAST_FULL); break;
    case EF_RQ_FAST: mm_cols(w, n_out, k_len, cols, two, q, out0, out1, EF_RQ_FAST); break;
    default: mm_cols(w, n_out, k_len, cols, two, q, out0, out1, EF_RQ_REF); break;
    }
}

#else
typedef int ef_matmul_unused; /* ISO C forbids an empty translation unit */
#endif
