/* DEPTHWISE_CONV_2D, int8 per-channel (TFLite reference_integer_ops::DepthwiseConvPerChannel semantics).
 * Output pixels are produced in raster order, each after its own reads (the planner relies on this order). */
#include "ef_quant.h"
#include "ef_runtime.h"

typedef struct {
    const int32_t *mult, *shift;
    const int32_t *rq;   /* channel_rq records: the fast modes requantise with these */
    int32_t out_offset, lo, hi;
} dw_out;

/* The taps [k0, k1) of a window starting at input coordinate `origin` that fall inside [0, extent). */
static inline void taps_inside(int32_t origin, int32_t dil, int32_t k, int32_t extent, int32_t *k0, int32_t *k1) {
    int32_t lo = 0, hi = k;
    while (lo < hi && origin + lo * dil < 0) ++lo;
    while (hi > lo && origin + (hi - 1) * dil >= extent) --hi;
    *k0 = lo, *k1 = hi;
}

#if defined(EF_PACKED)
/* Four channels from one 32-bit load: SXTB16 splits (c0,c2) / (c1,c3), SMLABB / SMLATT accumulate each. */
#define EF_DW_TAP4(vi, vw, a0, a1, a2, a3)                                \
    do {                                                                  \
        const int32_t x02_ = ef_sxtb16(vi), x13_ = ef_sxtb16_ror8(vi);    \
        const int32_t w02_ = ef_sxtb16(vw), w13_ = ef_sxtb16_ror8(vw);    \
        a0 = ef_smlabb(x02_, w02_, a0);                                   \
        a2 = ef_smlatt(x02_, w02_, a2);                                   \
        a1 = ef_smlabb(x13_, w13_, a1);                                   \
        a3 = ef_smlatt(x13_, w13_, a3);                                   \
    } while (0)

/* Channel ic's output: TFLite's requantisation (EF_RQ_REF), or the fast one from its channel_rq record, whose
 * rounding term carries the output offset. */
EF_ALWAYS_INLINE int8_t dw_requant(int32_t acc, const dw_out *q, int32_t ic, const int mode) {
    if (mode == EF_RQ_REF)
        return ef_requant(acc, q->mult[ic], q->shift[ic], EF_RQ_REF, q->out_offset, q->lo, q->hi);
    return ef_out8(ef_channel_rq(acc, q->rq + 4 * ic), q->lo, q->hi, mode == EF_RQ_FAST_FULL);
}

/* All four requantised before the first store: an int8 store could alias the records, forcing reloads. */
EF_ALWAYS_INLINE void store4(int8_t *o, const dw_out *q, int32_t ic, int32_t a0, int32_t a1, int32_t a2,
                             int32_t a3, const int mode) {
    const int8_t v0 = dw_requant(a0, q, ic, mode), v1 = dw_requant(a1, q, ic + 1, mode);
    const int8_t v2 = dw_requant(a2, q, ic + 2, mode), v3 = dw_requant(a3, q, ic + 3, mode);
    o[ic] = v0, o[ic + 1] = v1, o[ic + 2] = v2, o[ic + 3] = v3;
}

/* Keeps each tap's loads after the previous tap's MACs: hoisted together, the loads outnumber the free registers
 * and GCC spills the accumulators. */
#if defined(__GNUC__)
#define EF_TAP_ORDER() __asm__ volatile("" ::: "memory")
#else
#define EF_TAP_ORDER() ((void)0)
#endif

#define EF_DW_MAX_TAPS 25   /* up to 5x5 windows through the tap table; larger ones take dw_generic */

/* Tap t of four channels [ic, ic + 4): input through the pixel's tap table, weight at row t of 1HWO. */
#define EF_DW_TAP(t) EF_DW_TAP4(ef_read32(taps[t] + ic), ef_read32(wp + (t) * c), a0, a1, a2, a3); EF_TAP_ORDER()

/* One output pixel from its tap table: taps[t] is the input pixel under tap t, or pad_run (the input zero point
 * in every channel) where the tap falls in the padding. The accumulators start at bias_full (bias + input offset
 * x the channel's weight sum), so every tap multiplies raw inputs, and a padding tap adds zp x w = -offset x w,
 * cancelling its share of bias_full exactly as TFLite's skipped tap does. Border pixels thus run the same code as
 * interior ones; 3x3 windows (MobileNets) are unrolled. */
EF_ALWAYS_INLINE void dw_pixel(const int8_t *const *taps, int32_t n_taps, const int8_t *weights, int8_t *o,
                               int32_t c, const int32_t *bias_full, const dw_out *q_in, const int mode) {
    const dw_out qv = *q_in, *q = &qv;   /* a local copy: the int8 stores cannot alias it, so it stays in registers */
    const int32_t c4 = c & ~3;
    int32_t ic, t;
    for (ic = 0; ic < c4; ic += 4) {
        int32_t a0 = bias_full[ic], a1 = bias_full[ic + 1], a2 = bias_full[ic + 2], a3 = bias_full[ic + 3];
        const int8_t *wp = weights + ic;
        if (n_taps == 9) {
            EF_DW_TAP(0); EF_DW_TAP(1); EF_DW_TAP(2);
            EF_DW_TAP(3); EF_DW_TAP(4); EF_DW_TAP(5);
            EF_DW_TAP(6); EF_DW_TAP(7); EF_DW_TAP(8);
        } else {
            for (t = 0; t < n_taps; ++t) {
                EF_DW_TAP4(ef_read32(taps[t] + ic), ef_read32(wp), a0, a1, a2, a3);
                wp += c;
            }
        }
        store4(o, q, ic, a0, a1, a2, a3, mode);
    }
    for (; ic < c; ++ic) {  /* the last c % 4 channels, one at a time */
        int32_t acc = bias_full[ic];
        for (t = 0; t < n_taps; ++t) acc += taps[t][ic] * weights[t * c + ic];
        o[ic] = dw_requant(acc, q, ic, mode);
    }
}

#define EF_DW_PIXEL(name, mode)                                                                                   \
    EF_NOINLINE static void name(const int8_t *const *taps, int32_t n_taps, const int8_t *weights, int8_t *o,     \
                                 int32_t c, const int32_t *bias_full, const dw_out *q) {                          \
        dw_pixel(taps, n_taps, weights, o, c, bias_full, q, mode);                                                \
    }
EF_DW_PIXEL(dw_pixel_ref, EF_RQ_REF)
EF_DW_PIXEL(dw_pixel_fast, EF_RQ_FAST)
EF_DW_PIXEL(dw_pixel_full, EF_RQ_FAST_FULL)

/* Depth multiplier 1 (the code generator sets bias_full and pad_run for such layers): output pixels in raster
 * order, each from a table of its taps' input pixels. */
static void dw_packed(const ef_conv_params *p, const int8_t *in, int8_t *out, const int mode) {
    const int32_t c = p->in_c, in_h = p->in_h, in_w = p->in_w, k_h = p->k_h, k_w = p->k_w, n_taps = k_h * k_w;
    const dw_out q = {p->mult, p->shift, p->channel_rq, p->out_offset, p->act_min, p->act_max};
    const int32_t span_h = (k_h - 1) * p->dil_h, span_w = (k_w - 1) * p->dil_w;
    const int8_t *taps[EF_DW_MAX_TAPS];
    int32_t offs[EF_DW_MAX_TAPS];   /* tap t's input offset from the window's corner */
    int32_t oy, ox, ky, kx, t;
    int8_t *o = out;
    for (ky = 0, t = 0; ky < k_h; ++ky)
        for (kx = 0; kx < k_w; ++kx) offs[t++] = (ky * p->dil_h * in_w + kx * p->dil_w) * c;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_t;
        const int rows_inside = iy0 >= 0 && iy0 + span_h < in_h;
        for (ox = 0; ox < p->out_w; ++ox, o += c) {
            const int32_t ix0 = ox * p->stride_w - p->pad_l;
            if (rows_inside && ix0 >= 0 && ix0 + span_w < in_w) {
                const int8_t *corner = in + (iy0 * in_w + ix0) * c;
                for (t = 0; t < n_taps; ++t) taps[t] = corner + offs[t];
            } else {
                const int8_t **tp = taps;
                for (ky = 0; ky < k_h; ++ky) {
                    const int32_t iy = iy0 + ky * p->dil_h;
                    const int row_inside = iy >= 0 && iy < in_h;
                    for (kx = 0; kx < k_w; ++kx) {
                        const int32_t ix = ix0 + kx * p->dil_w;
                        *tp++ = row_inside && ix >= 0 && ix < in_w ? in + (iy * in_w + ix) * c : p->pad_run;
                    }
                }
            }
            if (mode == EF_RQ_FAST_FULL)
                dw_pixel_full(taps, n_taps, p->weights, o, c, p->bias_full, &q);
            else if (mode == EF_RQ_FAST)
                dw_pixel_fast(taps, n_taps, p->weights, o, c, p->bias_full, &q);
            else
                dw_pixel_ref(taps, n_taps, p->weights, o, c, p->bias_full, &q);
        }
    }
}
#endif

/* Any depth multiplier and channel count: one output at a time, as the reference. */
static void dw_generic(const ef_conv_params *p, const int8_t *in, int8_t *out) {
    /* locals: int8 stores may alias the parameter block, which would force reloads in the inner loops */
    const int32_t c_in = p->in_c, c_out = p->out_c, dm = p->depth_mult, in_h = p->in_h, in_w = p->in_w;
    const int32_t k_h = p->k_h, k_w = p->k_w, dil_h = p->dil_h, dil_w = p->dil_w, off = p->in_offset;
    const int32_t *bias = p->bias, *mult = p->mult, *shift = p->shift, *rq = p->channel_rq, fast = p->rq_fast;
    const int32_t oo = p->out_offset, lo = p->act_min, hi = p->act_max;
    const int8_t *weights = p->weights;
    int32_t oy, ox, ic, m, ky, kx;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_t;
        int32_t ky0, ky1;
        taps_inside(iy0, dil_h, k_h, in_h, &ky0, &ky1);
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_l;
            int8_t *o = out + (oy * p->out_w + ox) * c_out;
            int32_t kx0, kx1;
            taps_inside(ix0, dil_w, k_w, in_w, &kx0, &kx1);
            for (ic = 0; ic < c_in; ++ic) {
                for (m = 0; m < dm; ++m) {
                    const int32_t oc = ic * dm + m;
                    int32_t acc = rq ? rq[4 * oc] : (bias ? bias[oc] : 0);
                    for (ky = ky0; ky < ky1; ++ky) {
                        const int8_t *ip = in + ((iy0 + ky * dil_h) * in_w + ix0) * c_in + ic;
                        const int8_t *wp = weights + ky * k_w * c_out + oc;
                        for (kx = kx0; kx < kx1; ++kx) acc += (ip[kx * dil_w * c_in] + off) * wp[kx * c_out];
                    }
                    if (rq)
                        o[oc] = (int8_t)ef_clamp(ef_channel_rq(acc, rq + 4 * oc), lo, hi);
                    else
                        o[oc] = fast ? ef_requant(acc, mult[oc], shift[oc], EF_RQ_FAST, oo, lo, hi)
                                     : ef_requant(acc, mult[oc], shift[oc], EF_RQ_REF, oo, lo, hi);
                }
            }
        }
    }
}

int ef_depthwise_conv_2d(const ef_conv_params *p, const int8_t *in, int8_t *out) {
#if defined(EF_PACKED)
    if (p->pad_run && p->k_h * p->k_w <= EF_DW_MAX_TAPS) {
        /* the fast modes need the channel records; without them TFLite's arithmetic is exact for any layer */
        dw_packed(p, in, out, ef_requant_mode(p->channel_rq != 0, p->act_min, p->act_max));
        return 0;
    }
#endif
    dw_generic(p, in, out);
    return 0;
}
