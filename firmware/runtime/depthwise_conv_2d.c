/* DEPTHWISE_CONV_2D, int8 per-channel (TFLite reference_integer_ops::DepthwiseConvPerChannel semantics).
 * Output pixels are produced in raster order, each after its own reads (the planner relies on this order). */
#include "ef_quant.h"
#include "ef_runtime.h"

typedef struct {
    const int32_t *bias, *mult, *shift;
    int32_t out_offset, lo, hi;
} dw_out;

static inline int8_t requant(int32_t acc, const dw_out *q, int32_t oc) {
    if (q->bias) acc += q->bias[oc];
    return (int8_t)ef_clamp(ef_mbqm(acc, q->mult[oc], q->shift[oc]) + q->out_offset, q->lo, q->hi);
}

int ef_depthwise_conv_2d(const ef_conv_params *p, const int8_t *in, int8_t *out) {
    /* locals: int8 stores may alias the parameter block, which would force reloads in the inner loops */
    const int32_t c_in = p->in_c, c_out = p->out_c, dm = p->depth_mult, in_h = p->in_h, in_w = p->in_w;
    const int32_t k_h = p->k_h, k_w = p->k_w, dil_h = p->dil_h, dil_w = p->dil_w, off = p->in_offset;
    const dw_out q = {p->bias, p->mult, p->shift, p->out_offset, p->act_min, p->act_max};
    const int8_t *weights = p->weights;
    int32_t oy, ox, ic, m, ky, kx;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_t;
        int32_t ky0 = 0, ky1 = k_h;
        while (ky0 < ky1 && iy0 + ky0 * dil_h < 0) ++ky0;
        while (ky1 > ky0 && iy0 + (ky1 - 1) * dil_h >= in_h) --ky1;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_l;
            int8_t *o = out + (oy * p->out_w + ox) * c_out;
            int32_t kx0 = 0, kx1 = k_w;
            while (kx0 < kx1 && ix0 + kx0 * dil_w < 0) ++kx0;
            while (kx1 > kx0 && ix0 + (kx1 - 1) * dil_w >= in_w) --kx1;
            ic = 0;
#if defined(EF_PACKED)
            if (dm == 1 && (c_in & 3) == 0) {
                /* four channels per step: SXTB16 splits (c0,c2) / (c1,c3), SMLABB / SMLATT accumulate each */
                const int32_t off2 = (int32_t)(((uint32_t)(uint16_t)(int16_t)off) * 0x10001u);
                if (p->bias_full && ky0 == 0 && ky1 == k_h && kx0 == 0 && kx1 == k_w) {
                    /* the whole window inside the image: the input offset's share, offset x the channel's weight
                     * sum, is in bias_full already, so the taps multiply raw inputs */
                    const int32_t step = dil_w * c_in;
                    dw_out qn = q;
                    qn.bias = 0;
                    for (; ic < c_in; ic += 4) {
                        int32_t a0 = p->bias_full[ic], a1 = p->bias_full[ic + 1];
                        int32_t a2 = p->bias_full[ic + 2], a3 = p->bias_full[ic + 3];
                        const int8_t *wp = weights + ic;
                        for (ky = 0; ky < k_h; ++ky) {
                            const int8_t *ip = in + ((iy0 + ky * dil_h) * in_w + ix0) * c_in + ic;
                            for (kx = 0; kx < k_w; ++kx, ip += step, wp += c_out) {
                                const int32_t vi = ef_read32(ip), vw = ef_read32(wp);
                                const int32_t x02 = ef_sxtb16(vi), x13 = ef_sxtb16_ror8(vi);
                                const int32_t w02 = ef_sxtb16(vw), w13 = ef_sxtb16_ror8(vw);
                                a0 = ef_smlabb(x02, w02, a0);
                                a2 = ef_smlatt(x02, w02, a2);
                                a1 = ef_smlabb(x13, w13, a1);
                                a3 = ef_smlatt(x13, w13, a3);
                            }
                        }
                        o[ic] = requant(a0, &qn, ic);
                        o[ic + 1] = requant(a1, &qn, ic + 1);
                        o[ic + 2] = requant(a2, &qn, ic + 2);
                        o[ic + 3] = requant(a3, &qn, ic + 3);
                    }
                }
                for (; ic < c_in; ic += 4) {
                    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                    for (ky = ky0; ky < ky1; ++ky) {
                        const int8_t *ip = in + ((iy0 + ky * dil_h) * in_w + ix0 + kx0 * dil_w) * c_in + ic;
                        const int8_t *wp = weights + (ky * k_w + kx0) * c_out + ic;
                        for (kx = kx0; kx < kx1; ++kx, ip += dil_w * c_in, wp += c_out) {
                            const int32_t vi = ef_read32(ip), vw = ef_read32(wp);
                            const int32_t x02 = ef_sadd16(ef_sxtb16(vi), off2), x13 = ef_sadd16(ef_sxtb16_ror8(vi), off2);
                            const int32_t w02 = ef_sxtb16(vw), w13 = ef_sxtb16_ror8(vw);
                            a0 = ef_smlabb(x02, w02, a0);
                            a2 = ef_smlatt(x02, w02, a2);
                            a1 = ef_smlabb(x13, w13, a1);
                            a3 = ef_smlatt(x13, w13, a3);
                        }
                    }
                    o[ic] = requant(a0, &q, ic);
                    o[ic + 1] = requant(a1, &q, ic + 1);
                    o[ic + 2] = requant(a2, &q, ic + 2);
                    o[ic + 3] = requant(a3, &q, ic + 3);
                }
            }
#endif
            for (; ic < c_in; ++ic) {
                for (m = 0; m < dm; ++m) {
                    const int32_t oc = ic * dm + m;
                    int32_t acc = 0;
                    for (ky = ky0; ky < ky1; ++ky) {
                        const int8_t *ip = in + ((iy0 + ky * dil_h) * in_w + ix0) * c_in + ic;
                        const int8_t *wp = weights + ky * k_w * c_out + oc;
                        for (kx = kx0; kx < kx1; ++kx) acc += (ip[kx * dil_w * c_in] + off) * wp[kx * c_out];
                    }
                    o[oc] = requant(acc, &q, oc);
                }
            }
        }
    }
    return 0;
}
