/* CONV_2D, int8 per-channel (TFLite reference_integer_ops::ConvPerChannel semantics), grouped or not. */
#include "ef_quant.h"
#include "ef_runtime.h"
#include "ef_matmul.h"

#if defined(EF_PACKED)
/* im2col two output pixels at a time into q15 columns (offset added, padding = 0), then a 2x2-blocked SMLAD
 * matmul. Reads of a pixel pair complete before its outputs are written (the planner relies on this order for
 * ungrouped convolutions). One group's channels [c0, c0 + cg) per call. */
static void im2col(const ef_conv_params *p, const int8_t *in, int32_t oy, int32_t ox, int32_t c0, int32_t cg,
                   int32_t *cols, int32_t which) {
    const int32_t c = p->in_c, k_len = p->k_h * p->k_w * cg, row = p->k_w * cg;
    const int32_t iy0 = oy * p->stride_h - p->pad_t, ix0 = ox * p->stride_w - p->pad_l;
    /* with dilation 1, all channels and the whole kernel row inside the image, a row of taps is one NHWC run */
    const int row_inside = p->dil_w == 1 && cg == c && ix0 >= 0 && ix0 + p->k_w <= p->in_w;
    int32_t ky, kx, k = 0;
    for (ky = 0; ky < p->k_h; ++ky) {
        const int32_t iy = iy0 + ky * p->dil_h;
        if (iy < 0 || iy >= p->in_h) {
            ef_col_zero(cols, which, k, k_len, row);
            k += row;
            continue;
        }
        if (row_inside) {
            ef_col_fill(cols, which, k, k_len, in + (iy * p->in_w + ix0) * c, row, p->in_offset);
            k += row;
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

int ef_conv_2d(const ef_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch) {
    const int32_t groups = p->groups > 1 ? p->groups : 1;
    const int32_t cg = p->in_c / groups, fpg = p->out_c / groups;
    const int32_t k_len = p->k_h * p->k_w * cg, n_pix = p->out_h * p->out_w;
    ef_mm_out q = {0, 0, 0, 1, p->out_offset, p->act_min, p->act_max, p->rq_fast};
    int32_t i, g, oy = 0, ox = 0;
    for (i = 0; i < n_pix; i += 2) {
        const int two = i + 1 < n_pix;
        const int32_t oy1 = ox + 1 == p->out_w ? oy + 1 : oy, ox1 = ox + 1 == p->out_w ? 0 : ox + 1;
        for (g = 0; g < groups; ++g) {
            const int32_t o0 = g * fpg;
            im2col(p, in, oy, ox, g * cg, cg, scratch, 0);
            if (two)
                im2col(p, in, oy1, ox1, g * cg, cg, scratch, 1);
            else
                ef_col_zero(scratch, 1, 0, k_len, k_len);   /* defined contents; its results are not stored */
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
    const int32_t cg = c / groups, fpg = p->out_c / groups, k_len = p->k_h * p->k_w * cg;
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
                        const int8_t *wp = w + (ky * p->k_w + kx) * cg;
                        if (ix < 0 || ix >= p->in_w) continue;
                        for (i = 0; i < cg; ++i) acc += (ip[i] + p->in_offset) * wp[i];
                    }
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
