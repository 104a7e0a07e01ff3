/* CONV_2D, int8 per-channel (TFLite reference_integer_ops::ConvPerChannel semantics), grouped or not. */
#include "ef_quant.h"
#include "ef_runtime.h"
#include "ef_matmul.h"

#if defined(EF_PACKED)
/* im2col two output pixels at a time into q15 columns (offset added, padding = 0), then a 2x2-blocked SMLAD
 * matmul. Reads of a pixel pair complete before its outputs are written (the planner relies on this order for
 * ungrouped convolutions). One group's channels [c0, c0 + cg) per call. */
/* n inputs (offset added) into column `which` from an element index that starts a 4-group (k % 4 == 0): whole
 * groups by word, a last partial one by byte; the group's missing elements are left as they are. */
EF_ALWAYS_INLINE void fill_aligned(int32_t *cols, int32_t which, int32_t k, const int8_t *src, int32_t n,
                                   int32_t offset) {
    const int32_t off2 = ef_dup16(offset);
    int32_t *g = cols + k + which * 2;   /* group k / 4 starts at int32 index 4 * (k / 4) = k */
    int32_t i = 0;
    for (; i + 4 <= n; i += 4, g += 4) {
        const int32_t v = ef_read32(src + i);
        g[0] = ef_sadd16(ef_sxtb16(v), off2);
        g[1] = ef_sadd16(ef_sxtb16_ror8(v), off2);
    }
    if (i < n) {   /* elements (i, i+2) in g[0], (i+1, i+3) in g[1] */
        const int32_t x0 = src[i] + offset, x1 = i + 1 < n ? src[i + 1] + offset : 0;
        const int32_t x2 = i + 2 < n ? src[i + 2] + offset : 0;
        g[0] = (int32_t)(((uint32_t)(uint16_t)(int16_t)x0) | ((uint32_t)(uint16_t)(int16_t)x2 << 16));
        g[1] = (int32_t)((uint32_t)(uint16_t)(int16_t)x1);
    }
}

static void im2col(const ef_conv_params *p, const int8_t *in, int32_t oy, int32_t ox, int32_t c0, int32_t cg,
                   int32_t k_row, int32_t *cols, int32_t which) {
    const int32_t c = p->in_c, k_len = p->k_h * k_row, row = p->k_w * cg;
    const int32_t iy0 = oy * p->stride_h - p->pad_t, ix0 = ox * p->stride_w - p->pad_l;
    /* with dilation 1, all channels and the whole kernel row inside the image, a row of taps is one NHWC run */
    const int row_inside = p->dil_w == 1 && cg == c && ix0 >= 0 && ix0 + p->k_w <= p->in_w;
    int32_t ky, kx, k;
    for (ky = 0; ky < p->k_h; ++ky) {   /* a row's k_row - row padding columns stay zero (set by the caller) */
        const int32_t iy = iy0 + ky * p->dil_h;
        k = ky * k_row;
        if (iy < 0 || iy >= p->in_h) {
            ef_col_zero(cols, which, k, k_len, row);
            continue;
        }
        if (row_inside) {
            if ((k_row & 3) == 0 && k_row - row < 4)   /* whole groups per row: the last one padded with zeros */
                fill_aligned(cols, which, k, in + (iy * p->in_w + ix0) * c, row, p->in_offset);
            else
                ef_col_fill(cols, which, k, k_len, in + (iy * p->in_w + ix0) * c, row, p->in_offset);
            continue;
        }
        for (kx = 0; kx < p->k_w; ++kx, k += cg) {
            const int32_t ix = ix0 + kx * p->dil_w;
            if (ix < 0 || ix >= p->in_w)
                ef_col_zero(cols, which, k, k_len, cg);
            else
                ef_col_fill(cols, which, k, k_len, in + (iy * p->in_w + ix) * c + c0, cg, p->in_offset);
        }
    }
}

/* 1x1, stride 1, no padding, 8 input channels (MobileNet expansion layers): there the generic path spends more on
 * im2col and per-channel setup than on an output's 8 MACs. A pixel's inputs (offset added) are sign-extended once
 * into four q15 pairs that stay in registers; each output channel is then one weight load, 4 SXTB16 and 4 SMLADs
 * from its channel_rq record (ef_runtime.h), whose rounding term carries the output offset. */
/* One pixel pair (or, with two = 0, one pixel): the channel's record is read once, before either output is
 * stored (an int8 store could alias it), and each weight load and sign extension serves both pixels. */
EF_ALWAYS_INLINE void pointwise8_pair(const int8_t *in, int8_t *out, int32_t n_out, const int8_t *w,
                                      const int32_t *r, int32_t off2, int32_t lo, int32_t hi, const int two,
                                      const int full) {
    const int8_t *const w_end = w + 8 * n_out;
    const int32_t a = ef_read32(in), b = ef_read32(in + 4);
    const int32_t c = two ? ef_read32(in + 8) : a, d = two ? ef_read32(in + 12) : b;
    const int32_t x0 = ef_sadd16(ef_sxtb16(a), off2), x1 = ef_sadd16(ef_sxtb16_ror8(a), off2);
    const int32_t x2 = ef_sadd16(ef_sxtb16(b), off2), x3 = ef_sadd16(ef_sxtb16_ror8(b), off2);
    const int32_t y0 = ef_sadd16(ef_sxtb16(c), off2), y1 = ef_sadd16(ef_sxtb16_ror8(c), off2);
    const int32_t y2 = ef_sadd16(ef_sxtb16(d), off2), y3 = ef_sadd16(ef_sxtb16_ror8(d), off2);
    for (; w < w_end; w += 8, r += 4, ++out) {
        const int32_t wa = ef_read32(w), wb = ef_read32(w + 4);
        const int32_t bias = r[0], mult = r[1], e = r[2], round = r[3];
        int32_t s = ef_sxtb16(wa), acc0 = ef_smlad(s, x0, bias), acc1 = ef_smlad(s, y0, bias);
        s = ef_sxtb16_ror8(wa);
        acc0 = ef_smlad(s, x1, acc0), acc1 = ef_smlad(s, y1, acc1);
        s = ef_sxtb16(wb);
        acc0 = ef_smlad(s, x2, acc0), acc1 = ef_smlad(s, y2, acc1);
        s = ef_sxtb16_ror8(wb);
        acc0 = ef_smlad(s, x3, acc0), acc1 = ef_smlad(s, y3, acc1);
        out[0] = ef_out8(ef_mbqm_fast_r(acc0, mult, e, round), lo, hi, full);
        if (two) {
            out[n_out] = ef_out8(ef_mbqm_fast_r(acc1, mult, e, round), lo, hi, full);
        }
    }
}

/* Two pixels at a time, a last odd one alone; both pixels' inputs are read before either's outputs are written. */
EF_ALWAYS_INLINE void pointwise8_body(const ef_conv_params *p, const int8_t *in, int8_t *out, const int full) {
    const int32_t n_out = p->out_c, n_pix = p->out_h * p->out_w, lo = p->act_min, hi = p->act_max;
    const int32_t off2 = ef_dup16(p->in_offset);
    int32_t i;
    for (i = 0; i + 1 < n_pix; i += 2, in += 16, out += 2 * n_out)
        pointwise8_pair(in, out, n_out, p->weights, p->channel_rq, off2, lo, hi, 1, full);
    if (i < n_pix) pointwise8_pair(in, out, n_out, p->weights, p->channel_rq, off2, lo, hi, 0, full);
}

EF_NOINLINE static void pointwise8_full(const ef_conv_params *p, const int8_t *in, int8_t *out) {
    pointwise8_body(p, in, out, 1);
}
EF_NOINLINE static void pointwise8_clamp(const ef_conv_params *p, const int8_t *in, int8_t *out) {
    pointwise8_body(p, in, out, 0);
}

int ef_conv_2d(const ef_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch) {
    const int32_t groups = p->groups > 1 ? p->groups : 1;
    const int32_t cg = p->in_c / groups, fpg = p->out_c / groups;
    const int32_t k_row = p->k_row ? p->k_row : p->k_w * cg, k_len = p->k_h * k_row, n_pix = p->out_h * p->out_w;
    ef_mm_out q = {0, 0, 0, 1, p->out_offset, p->act_min, p->act_max, p->rq_fast, 0};
    int32_t i, g, oy = 0, ox = 0;
    if (p->pointwise) {   /* each pixel's reads precede its writes, as below */
        if (p->act_min <= -128 && p->act_max >= 127)
            pointwise8_full(p, in, out);
        else
            pointwise8_clamp(p, in, out);
        return 0;
    }
    if (k_row > p->k_w * cg)   /* weight rows padded to whole SMLAD groups: their columns are zero throughout */
        for (i = 0; i < p->k_h; ++i) {
            ef_col_zero(scratch, 0, i * k_row + p->k_w * cg, k_len, k_row - p->k_w * cg);
            ef_col_zero(scratch, 1, i * k_row + p->k_w * cg, k_len, k_row - p->k_w * cg);
        }
    for (i = 0; i < n_pix; i += 2) {
        const int two = i + 1 < n_pix;
        const int32_t oy1 = ox + 1 == p->out_w ? oy + 1 : oy, ox1 = ox + 1 == p->out_w ? 0 : ox + 1;
        for (g = 0; g < groups; ++g) {
            const int32_t o0 = g * fpg;
            im2col(p, in, oy, ox, g * cg, cg, k_row, scratch, 0);
            if (two)
                im2col(p, in, oy1, ox1, g * cg, cg, k_row, scratch, 1);
            else
                ef_col_zero(scratch, 1, 0, k_len, k_len);   /* defined contents; its results are not stored */
            if (p->channel_rq)
                q.rq = p->channel_rq + 4 * o0;
            else
                q.bias = p->bias ? p->bias + o0 : 0, q.mult = p->mult + o0, q.shift = p->shift + o0;
            ef_mm_cols(p->weights + o0 * k_len, fpg, k_len, scratch, two, &q, out + i * p->out_c + o0,
                       out + (i + 1) * p->out_c + o0);
        }
        oy = oy1, ox = ox1;
        if (two && ++ox == p->out_w) ox = 0, ++oy;
    }
    return 0;
}

#else

int ef_conv_2d(const ef_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch) {
    const int32_t c = p->in_c, groups = p->groups > 1 ? p->groups : 1;
    const int32_t cg = c / groups, fpg = p->out_c / groups;
    const int32_t k_row = p->k_row ? p->k_row : p->k_w * cg, k_len = p->k_h * k_row;
    int32_t oy, ox, oc, ky, kx, i;
    (void)scratch;
    for (oy = 0; oy < p->out_h; ++oy) {
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t iy0 = oy * p->stride_h - p->pad_t, ix0 = ox * p->stride_w - p->pad_l;
            int8_t *o = out + (oy * p->out_w + ox) * p->out_c;
            for (oc = 0; oc < p->out_c; ++oc) {
                const int8_t *w = p->weights + oc * k_len;
                const int32_t c0 = (oc / fpg) * cg;
                int32_t acc = 0;
                for (ky = 0; ky < p->k_h; ++ky) {
                    const int32_t iy = iy0 + ky * p->dil_h;
                    if (iy < 0 || iy >= p->in_h) continue;
                    for (kx = 0; kx < p->k_w; ++kx) {
                        const int32_t ix = ix0 + kx * p->dil_w;
                        const int8_t *ip = in + (iy * p->in_w + ix) * c + c0;
                        const int8_t *wp = w + ky * k_row + kx * cg;
                        if (ix < 0 || ix >= p->in_w) continue;
                        for (i = 0; i < cg; ++i) acc += (ip[i] + p->in_offset) * wp[i];
                    }
                }
                if (p->channel_rq) {
                    const int32_t *r = p->channel_rq + 4 * oc;
                    o[oc] = (int8_t)ef_clamp(ef_channel_rq(acc + r[0], r), p->act_min, p->act_max);
                    continue;
                }
                if (p->bias) acc += p->bias[oc];
                o[oc] = p->rq_fast ? ef_requant(acc, p->mult[oc], p->shift[oc], EF_RQ_FAST, p->out_offset, p->act_min,
                                                p->act_max)
                                   : ef_requant(acc, p->mult[oc], p->shift[oc], EF_RQ_REF, p->out_offset, p->act_min,
                                                p->act_max);
            }
        }
    }
    return 0;
}
#endif
