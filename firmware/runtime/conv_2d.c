/* CONV_2D, int8 per-channel (TFLite reference_integer_ops::ConvPerChannel semantics). */
#include "ef_quant.h"
#include "ef_runtime.h"
#include "ef_matmul.h"

#if defined(EF_PACKED)
/* im2col two output pixels at a time into q15 columns (offset added, padding = 0), then a 2x2-blocked SMLAD
 * matmul. Reads of a pixel pair complete before its outputs are written (the planner relies on this order). */
static void im2col(const ef_conv_params *p, const int8_t *in, int32_t oy, int32_t ox, int32_t *cols, int32_t which) {
    const int32_t c = p->in_c, k_len = p->k_h * p->k_w * c, row = p->k_w * c;
    const int32_t iy0 = oy * p->stride_h - p->pad_t, ix0 = ox * p->stride_w - p->pad_l;
    /* with dilation 1 and the whole kernel row inside the image, a row of taps is one contiguous NHWC run */
    const int row_inside = p->dil_w == 1 && ix0 >= 0 && ix0 + p->k_w <= p->in_w;
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
        for (kx = 0; kx < p->k_w; ++kx, k += c) {
            const int32_t ix = ix0 + kx * p->dil_w;
            if (ix < 0 || ix >= p->in_w)
                ef_col_zero(cols, which, k, k_len, c);
            else
                ef_col_fill(cols, which, k, k_len, in + (iy * p->in_w + ix) * c, c, p->in_offset);
        }
    }
}

int ef_conv_2d(const ef_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch) {
    const int32_t k_len = p->k_h * p->k_w * p->in_c, n_pix = p->out_h * p->out_w;
    int32_t i, oy = 0, ox = 0;
    for (i = 0; i < n_pix; i += 2) {
        const int two = i + 1 < n_pix;
        im2col(p, in, oy, ox, scratch, 0);
        if (++ox == p->out_w) ox = 0, ++oy;
        if (two) {
            im2col(p, in, oy, ox, scratch, 1);
            if (++ox == p->out_w) ox = 0, ++oy;
        } else {
            ef_col_zero(scratch, 1, 0, k_len, k_len);   /* defined contents; its results are not stored */
        }
        ef_mm_cols(p->weights, p->out_c, k_len, scratch, two, p->bias, p->mult, p->shift, 1, p->out_offset,
                   p->act_min, p->act_max, out + i * p->out_c, out + (i + 1) * p->out_c);
    }
    return 0;
}

#else

int ef_conv_2d(const ef_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch) {
    const int32_t c = p->in_c, k_len = p->k_h * p->k_w * c;
    int32_t oy, ox, oc, ky, kx, i;
    (void)scratch;
    for (oy = 0; oy < p->out_h; ++oy) {
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t iy0 = oy * p->stride_h - p->pad_t, ix0 = ox * p->stride_w - p->pad_l;
            int8_t *o = out + (oy * p->out_w + ox) * p->out_c;
            for (oc = 0; oc < p->out_c; ++oc) {
                const int8_t *w = p->weights + oc * k_len;
                int32_t acc = 0;
                for (ky = 0; ky < p->k_h; ++ky) {
                    const int32_t iy = iy0 + ky * p->dil_h;
                    if (iy < 0 || iy >= p->in_h) continue;
                    for (kx = 0; kx < p->k_w; ++kx) {
                        const int32_t ix = ix0 + kx * p->dil_w;
                        const int8_t *ip = in + (iy * p->in_w + ix) * c;
                        const int8_t *wp = w + (ky * p->k_w + kx) * c;
                        if (ix < 0 || ix >= p->in_w) continue;
                        for (i = 0; i < c; ++i) acc += (ip[i] + p->in_offset) * wp[i];
                    }
                }
                if (p->bias) acc += p->bias[oc];
                acc = ef_mbqm(acc, p->mult[oc], p->shift[oc]) + p->out_offset;
                o[oc] = (int8_t)ef_clamp(acc, p->act_min, p->act_max);
            }
        }
    }
    return 0;
}
#endif
