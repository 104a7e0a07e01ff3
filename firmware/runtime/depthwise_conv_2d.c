/* DEPTHWISE_CONV_2D, int8 per-channel (TFLite reference_integer_ops::DepthwiseConvPerChannel semantics).
 * Output pixels are produced in raster order, each after its own reads (the planner relies on this order). */
#include "ef_quant.h"
#include "ef_runtime.h"

typedef struct {
    const int32_t *mult, *shift;
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

EF_ALWAYS_INLINE void store4(int8_t *o, const dw_out *q, int32_t ic, int32_t a0, int32_t a1, int32_t a2,
                             int32_t a3, const int mode) {
    o[ic] = ef_requant(a0, q->mult[ic], q->shift[ic], mode, q->out_offset, q->lo, q->hi);
    o[ic + 1] = ef_requant(a1, q->mult[ic + 1], q->shift[ic + 1], mode, q->out_offset, q->lo, q->hi);
    o[ic + 2] = ef_requant(a2, q->mult[ic + 2], q->shift[ic + 2], mode, q->out_offset, q->lo, q->hi);
    o[ic + 3] = ef_requant(a3, q->mult[ic + 3], q->shift[ic + 3], mode, q->out_offset, q->lo, q->hi);
}

/* Keeps each tap's loads after the previous tap's MACs: hoisted together, the loads of a row outnumber the
 * free registers and GCC spills the accumulators. */
#if defined(__GNUC__)
#define EF_TAP_ORDER() __asm__ volatile("" ::: "memory")
#else
#define EF_TAP_ORDER() ((void)0)
#endif

/* One output pixel whose window lies wholly inside the image, four channels at a time: the accumulators start
 * at bias_full (bias + the input offset times the channel's weight sum), so the taps multiply raw inputs. Kept
 * out of line so that its few live values stay in registers (inlined into the pixel loops they spill). */
EF_ALWAYS_INLINE void pixel_inside(const int8_t *base, const int8_t *weights, int8_t *o, int32_t c, int32_t k_h,
                                   int32_t k_w, int32_t step, int32_t row, const int32_t *bias_full,
                                   const dw_out *q, const int mode) {
    const int32_t c4 = c & ~3;
    int32_t ic, ky, kx;
    for (ic = 0; ic < c4; ic += 4) {
        int32_t a0 = bias_full[ic], a1 = bias_full[ic + 1], a2 = bias_full[ic + 2], a3 = bias_full[ic + 3];
        const int8_t *ip = base + ic, *wp = weights + ic;
        for (ky = 0; ky < k_h; ++ky, ip += row) {
            if (k_w == 3) {
                EF_DW_TAP4(ef_read32(ip), ef_read32(wp), a0, a1, a2, a3);
                EF_TAP_ORDER();
                EF_DW_TAP4(ef_read32(ip + step), ef_read32(wp + c), a0, a1, a2, a3);
                EF_TAP_ORDER();
                EF_DW_TAP4(ef_read32(ip + 2 * step), ef_read32(wp + 2 * c), a0, a1, a2, a3);
                wp += 3 * c;
            } else {
                const int8_t *x = ip;
                for (kx = 0; kx < k_w; ++kx, x += step, wp += c)
                    EF_DW_TAP4(ef_read32(x), ef_read32(wp), a0, a1, a2, a3);
            }
        }
        store4(o, q, ic, a0, a1, a2, a3, mode);
    }
    for (; ic < c; ++ic) {  /* the last c % 4 channels, one at a time */
        int32_t acc = bias_full[ic];
        const int8_t *ip = base + ic, *wp = weights + ic;
        for (ky = 0; ky < k_h; ++ky, ip += row)
            for (kx = 0; kx < k_w; ++kx, wp += c) acc += ip[kx * step] * *wp;
        o[ic] = ef_requant(acc, q->mult[ic], q->shift[ic], mode, q->out_offset, q->lo, q->hi);
    }
}

#if defined(__GNUC__)
#define EF_NOINLINE __attribute__((noinline))
#else
#define EF_NOINLINE
#endif
#define EF_DW_PIXEL_INSIDE(name, mode)                                                                          \
    EF_NOINLINE static void name(const int8_t *base, const int8_t *weights, int8_t *o, int32_t c, int32_t k_h,  \
                                 int32_t k_w, int32_t step, int32_t row, const int32_t *bias_full,             \
                                 const dw_out *q) {                                                            \
        pixel_inside(base, weights, o, c, k_h, k_w, step, row, bias_full, q, mode);                              \
    }
EF_DW_PIXEL_INSIDE(pixel_inside_ref, EF_RQ_REF)
EF_DW_PIXEL_INSIDE(pixel_inside_fast, EF_RQ_FAST)
EF_DW_PIXEL_INSIDE(pixel_inside_full, EF_RQ_FAST_FULL)

/* Depth multiplier 1, four channels at a time (the last c % 4 one at a time). A window wholly inside the image
 * starts from bias_full (bias + the input offset times the channel's weight sum), so its taps multiply raw inputs;
 * a window on the border adds the offset to each input it reads and skips the taps outside. One copy for the
 * three requantisation modes (a run-time branch per border output); the interior kernel has one per mode. */
static void dw_packed(const ef_conv_params *p, const int8_t *in, int8_t *out, const int mode) {
    const int32_t c = p->in_c, in_h = p->in_h, in_w = p->in_w, k_h = p->k_h, k_w = p->k_w;
    const int32_t dil_h = p->dil_h, step = p->dil_w * c;
    const int32_t off2 = (int32_t)(((uint32_t)(uint16_t)(int16_t)p->in_offset) * 0x10001u);
    const int32_t *bias = p->bias, *bias_full = p->bias_full;
    const dw_out q = {p->mult, p->shift, p->out_offset, p->act_min, p->act_max};
    const int8_t *weights = p->weights;
    int32_t oy, ox, ic, ky, kx;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_t;
        int32_t ky0, ky1;
        taps_inside(iy0, dil_h, k_h, in_h, &ky0, &ky1);
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_l;
            int8_t *o = out + (oy * p->out_w + ox) * c;
            int32_t kx0, kx1;
            taps_inside(ix0, p->dil_w, k_w, in_w, &kx0, &kx1);
            if (bias_full && ky0 == 0 && ky1 == k_h && kx0 == 0 && kx1 == k_w) {
                const int8_t *base = in + (iy0 * in_w + ix0) * c;
                const int32_t row = dil_h * in_w * c;
                if (mode == EF_RQ_FAST_FULL)
                    pixel_inside_full(base, weights, o, c, k_h, k_w, step, row, bias_full, &q);
                else if (mode == EF_RQ_FAST)
                    pixel_inside_fast(base, weights, o, c, k_h, k_w, step, row, bias_full, &q);
                else
                    pixel_inside_ref(base, weights, o, c, k_h, k_w, step, row, bias_full, &q);
                continue;
            }
            for (ic = 0; ic < (c & ~3); ic += 4) {
                int32_t a0 = bias ? bias[ic] : 0, a1 = bias ? bias[ic + 1] : 0;
                int32_t a2 = bias ? bias[ic + 2] : 0, a3 = bias ? bias[ic + 3] : 0;
                for (ky = ky0; ky < ky1; ++ky) {
                    const int8_t *ip = in + ((iy0 + ky * dil_h) * in_w + ix0 + kx0 * p->dil_w) * c + ic;
                    const int8_t *wp = weights + (ky * k_w + kx0) * c + ic;
                    for (kx = kx0; kx < kx1; ++kx, ip += step, wp += c) {
                        const int32_t vi = ef_read32(ip), vw = ef_read32(wp);
                        const int32_t x02 = ef_sadd16(ef_sxtb16(vi), off2), x13 = ef_sadd16(ef_sxtb16_ror8(vi), off2);
                        const int32_t w02 = ef_sxtb16(vw), w13 = ef_sxtb16_ror8(vw);
                        a0 = ef_smlabb(x02, w02, a0);
                        a2 = ef_smlatt(x02, w02, a2);
                        a1 = ef_smlabb(x13, w13, a1);
                        a3 = ef_smlatt(x13, w13, a3);
                    }
                }
                store4(o, &q, ic, a0, a1, a2, a3, mode);
            }
            for (; ic < c; ++ic) {
                int32_t acc = bias ? bias[ic] : 0;
                for (ky = ky0; ky < ky1; ++ky) {
                    const int8_t *ip = in + ((iy0 + ky * dil_h) * in_w + ix0) * c + ic;
                    const int8_t *wp = weights + ky * k_w * c + ic;
                    for (kx = kx0; kx < kx1; ++kx) acc += (ip[kx * step] + p->in_offset) * wp[kx * c];
                }
                o[ic] = ef_requant(acc, q.mult[ic], q.shift[ic], mode, q.out_offset, q.lo, q.hi);
            }
        }
    }
}
#endif

/* Any depth multiplier and channel count: one output at a time, as the reference. */
static void dw_generic(const ef_conv_params *p, const int8_t *in, int8_t *out) {
    /* locals: int8 stores may alias the parameter block, which would force reloads in the inner loops */
    const int32_t c_in = p->in_c, c_out = p->out_c, dm = p->depth_mult, in_h = p->in_h, in_w = p->in_w;
    const int32_t k_h = p->k_h, k_w = p->k_w, dil_h = p->dil_h, dil_w = p->dil_w, off = p->in_offset;
    const int32_t *bias = p->bias, *mult = p->mult, *shift = p->shift, fast = p->rq_fast;
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
                    int32_t acc = bias ? bias[oc] : 0;
                    for (ky = ky0; ky < ky1; ++ky) {
                        const int8_t *ip = in + ((iy0 + ky * dil_h) * in_w + ix0) * c_in + ic;
                        const int8_t *wp = weights + ky * k_w * c_out + oc;
                        for (kx = kx0; kx < kx1; ++kx) acc += (ip[kx * dil_w * c_in] + off) * wp[kx * c_out];
                    }
                    o[oc] = fast ? ef_requant(acc, mult[oc], shift[oc], EF_RQ_FAST, oo, lo, hi)
                                 : ef_requant(acc, mult[oc], shift[oc], EF_RQ_REF, oo, lo, hi);
                }
            }
        }
    }
}

int ef_depthwise_conv_2d(const ef_conv_params *p, const int8_t *in, int8_t *out) {
#if defined(EF_PACKED)
    if (p->depth_mult == 1) {
        dw_packed(p, in, out, ef_requant_mode(p->rq_fast, p->act_min, p->act_max));
        return 0;
    }
#endif
    dw_generic(p, in, out);
    return 0;
}
