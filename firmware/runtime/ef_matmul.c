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
    const int32_t off2 = ef_dup16(offset);
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

/* Channel o's output: TFLite's requantisation, or the fast one from its channel_rq record (whose rounding term
 * carries the output offset). */
EF_ALWAYS_INLINE int8_t mm_requant(int32_t acc, const ef_mm_out *q, int32_t o, const int mode) {
    if (mode == EF_RQ_REF) {   /* the arrays: layers without records (each channel requantised once, or rare) */
        const int32_t i = q->per_channel ? o : 0;
        return q->rq_fast ? ef_requant(acc, q->mult[i], q->shift[i], EF_RQ_FAST, q->out_offset, q->act_min,
                                       q->act_max)
                          : ef_requant(acc, q->mult[i], q->shift[i], EF_RQ_REF, q->out_offset, q->act_min,
                                       q->act_max);
    }
    return ef_out8(ef_channel_rq(acc, q->rq + 4 * o), q->act_min, q->act_max, mode == EF_RQ_FAST_FULL);
}

/* One body per requantisation mode (a constant at each call). Accumulators start at the bias; a
 * 2 (channel) x 2 (pixel) block shares every weight and column load. */
EF_ALWAYS_INLINE void mm_cols(const int8_t *w, int32_t n_out, int32_t k_len, const int32_t *cols, int two,
                              const ef_mm_out *q_in, int8_t *out0, int8_t *out1, const int mode) {
    const ef_mm_out qv = *q_in, *q = &qv;   /* a local copy: the int8 stores cannot alias it */
    const int32_t k4 = k_len & ~3, groups = k4 >> 2;
    const int32_t tail = k_len - k4, tail_base = k4 * 2;
    const int32_t *bias = mode == EF_RQ_REF ? q->bias : 0;
    int32_t o = 0;
    for (; o < n_out; o += 2) {
        const int pair = o + 1 < n_out;
        const int32_t ob = o + pair;   /* odd channel count: compute the last one twice, store it once */
        const int8_t *wa = w + o * k_len;
        const int8_t *wb = w + ob * k_len;
        const int32_t *c = cols;
        int32_t a0 = mode != EF_RQ_REF ? q->rq[4 * o] : (bias ? bias[o] : 0);
        int32_t b0 = mode != EF_RQ_REF ? q->rq[4 * ob] : (bias ? bias[ob] : 0), a1 = a0, b1 = b0, g, t;
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
        out0[o] = mm_requant(a0, q, o, mode);
        if (two) out1[o] = mm_requant(a1, q, o, mode);
        if (pair) {
            out0[ob] = mm_requant(b0, q, ob, mode);
            if (two) out1[ob] = mm_requant(b1, q, ob, mode);
        }
    }
}

/* mm_cols for layers with channel_rq records, written for few live values: pointers that advance, no per-channel
 * index arithmetic, the odd last channel after the loop. */
EF_ALWAYS_INLINE void mm_cols_rq(const int8_t *w, int32_t n_out, int32_t k_len, const int32_t *cols, int two,
                                 const int32_t *rq, int32_t lo, int32_t hi, int8_t *out0, int8_t *out1,
                                 const int full) {
    const int32_t k4 = k_len & ~3, tail = k_len - k4;
    const int32_t *const c_end = cols + k4;
    const int32_t tail0 = k4 * 2, tail1 = tail0 + tail;   /* int16 indices of the two columns' tails */
    int8_t *const end0 = out0 + (n_out & ~1);
    int32_t t;
    for (; out0 < end0; out0 += 2, out1 += 2, w += 2 * k_len, rq += 8) {
        const int8_t *wa = w, *wb = w + k_len;
        const int32_t *c = cols;
        int32_t a0 = rq[0], b0 = rq[4], a1 = a0, b1 = b0;
        for (; c < c_end; c += 4, wa += 4, wb += 4) {
            const int32_t va = ef_read32(wa), vb = ef_read32(wb);
            int32_t s = ef_sxtb16(va);
            a0 = ef_smlad(s, c[0], a0);
            a1 = ef_smlad(s, c[2], a1);
            s = ef_sxtb16_ror8(va);
            a0 = ef_smlad(s, c[1], a0);
            a1 = ef_smlad(s, c[3], a1);
            s = ef_sxtb16(vb);
            b0 = ef_smlad(s, c[0], b0);
            b1 = ef_smlad(s, c[2], b1);
            s = ef_sxtb16_ror8(vb);
            b0 = ef_smlad(s, c[1], b0);
            b1 = ef_smlad(s, c[3], b1);
        }
        for (t = 0; t < tail; ++t) {
            const int32_t x = get16(cols, tail0 + t), y = get16(cols, tail1 + t);
            a0 += wa[t] * x, a1 += wa[t] * y;
            b0 += wb[t] * x, b1 += wb[t] * y;
        }
        {   /* both records read before any store (an int8 store could alias them) */
            const int32_t ma = rq[1], ea = rq[2], ra = rq[3], mb = rq[5], eb = rq[6], rb = rq[7];
            a0 = ef_mbqm_fast_r(a0, ma, ea, ra), b0 = ef_mbqm_fast_r(b0, mb, eb, rb);
            a1 = ef_mbqm_fast_r(a1, ma, ea, ra), b1 = ef_mbqm_fast_r(b1, mb, eb, rb);
            out0[0] = ef_out8(a0, lo, hi, full), out0[1] = ef_out8(b0, lo, hi, full);
            if (two) out1[0] = ef_out8(a1, lo, hi, full), out1[1] = ef_out8(b1, lo, hi, full);
        }
    }
    if (n_out & 1) {
        const int32_t *c = cols;
        int32_t a0 = rq[0], a1 = a0;
        for (; c < c_end; c += 4, w += 4) {
            const int32_t va = ef_read32(w);
            a0 = ef_smlad(ef_sxtb16(va), c[0], a0);
            a1 = ef_smlad(ef_sxtb16(va), c[2], a1);
            a0 = ef_smlad(ef_sxtb16_ror8(va), c[1], a0);
            a1 = ef_smlad(ef_sxtb16_ror8(va), c[3], a1);
        }
        for (t = 0; t < tail; ++t) a0 += w[t] * get16(cols, tail0 + t), a1 += w[t] * get16(cols, tail1 + t);
        out0[0] = ef_out8(ef_channel_rq(a0, rq), lo, hi, full);
        if (two) out1[0] = ef_out8(ef_channel_rq(a1, rq), lo, hi, full);
    }
}

void ef_mm_cols(const int8_t *w, int32_t n_out, int32_t k_len, const int32_t *cols, int two, const ef_mm_out *q,
                int8_t *out0, int8_t *out1) {
    switch (ef_requant_mode(q->rq != 0, q->act_min, q->act_max)) {
    case EF_RQ_FAST_FULL: mm_cols_rq(w, n_out, k_len, cols, two, q->rq, 0, 0, out0, out1, 1); break;
    case EF_RQ_FAST: mm_cols_rq(w, n_out, k_len, cols, two, q->rq, q->act_min, q->act_max, out0, out1, 0); break;
    default: mm_cols(w, n_out, k_len, cols, two, q, out0, out1, EF_RQ_REF); break;
    }
}

#else
typedef int ef_matmul_unused; /* ISO C forbids an empty translation unit */
#endif
