/* DEPTHWISE_CONV_2D, int8 per-channel (TFLite reference_integer_ops::DepthwiseConvPerChannel semantics).
 * Output pixels are produced in raster order, each after its own reads (the planner relies on this order). */
#include "ef_quant.h"
#include "ef_runtime.h"

int ef_depthwise_conv_2d(const ef_conv_params *p, const int8_t *in, int8_t *out) {
    const int32_t c_in = p->in_c, c_out = p->out_c, dm = p->depth_mult;
    int32_t oy, ox, ic, m, ky, kx;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_t;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_l;
            int8_t *o = out + (oy * p->out_w + ox) * c_out;
            /* valid tap window, hoisted out of the channel loop */
            int32_t ky0 = 0, ky1 = p->k_h, kx0 = 0, kx1 = p->k_w;
            while (ky0 < ky1 && iy0 + ky0 * p->dil_h < 0) ++ky0;
            while (ky1 > ky0 && iy0 + (ky1 - 1) * p->dil_h >= p->in_h) --ky1;
            while (kx0 < kx1 && ix0 + kx0 * p->dil_w < 0) ++kx0;
            while (kx1 > kx0 && ix0 + (kx1 - 1) * p->dil_w >= p->in_w) --kx1;
            for (ic = 0; ic < c_in; ++ic) {
                for (m = 0; m < dm; ++m) {
                    const int32_t oc = ic * dm + m;
                    int32_t acc = 0;
                    for (ky = ky0; ky < ky1; ++ky) {
                        const int8_t *ip = in + ((iy0 + ky * p->dil_h) * p->in_w + ix0) * c_in + ic;
                        const int8_t *wp = p->weights + ky * p->k_w * c_out + oc;
                        for (kx = kx0; kx < kx1; ++kx)
                            acc += (ip[kx * p->dil_w * c_in] + p->in_offset) * wp[kx * c_out];
                    }
                    if (p->bias) acc += p->bias[oc];
                    acc = ef_mbqm(acc, p->mult[oc], p->shift[oc]) + p->out_offset;
                    o[oc] = (int8_t)ef_clamp(acc, p->act_min, p->act_max);
                }
            }
        }
    }
    return 0;
}
