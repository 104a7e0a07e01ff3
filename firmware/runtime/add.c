/* ADD, int8 (TFLite reference_integer_ops::Add semantics: rescale both inputs to a common 2^20-scaled domain). */
#include "ef_quant.h"
#include "ef_runtime.h"

/* Parameters copied into locals: the int8 output stores may alias anything, so the compiler would otherwise
 * reload every field of the parameter block for every element. */
typedef struct {
    int32_t o1, o2, oo, ls, m1, m2, mo, lo, hi;
    int e1, e2, eo;
    int32_t k1, k2, ko; /* rounding masks (1 << e) - 1 */
    int32_t r1, r2, ro, n1, n2, no; /* mbqm_fast: 2^(e-1) and the sign mask, 0 for e = 0 */
} add_consts;

static inline int32_t rdbpot(int32_t x, int e, int32_t mask) {
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + ((x & mask) > threshold ? 1 : 0);
}

static inline int8_t add1(const add_consts *c, int32_t x, int32_t y) {
    const int32_t a = rdbpot(ef_srdhm((x + c->o1) * (1 << c->ls), c->m1), c->e1, c->k1);
    const int32_t b = rdbpot(ef_srdhm((y + c->o2) * (1 << c->ls), c->m2), c->e2, c->k2);
    const int32_t r = rdbpot(ef_srdhm(a + b, c->mo), c->eo, c->ko) + c->oo;
    return (int8_t)ef_clamp(r, c->lo, c->hi);
}

/* ef_mbqm_fast extended to exponent 0 (an input multiplier of exactly 1/2, when both input scales are equal):
 * `round` is 2^(e-1) and `neg` all ones for e >= 1, both 0 for e = 0. */
static inline int32_t mbqm_fast(int32_t x, int32_t m, int e, int32_t round, int32_t neg) {
    const int32_t v = ef_smmulr((int32_t)((uint32_t)x << 1), m);
    return (v + ((v >> 31) & neg) + round) >> e;
}

/* The same arithmetic with SMMULR, exact when the left shift is 20 and every multiplier positive (the kernel
 * checks): |x + offset| <= 255, so each operand of the doubling, (x + offset) * 2^20 and the rescaled sum a + b,
 * stays below 2^30 in magnitude. */
static inline int8_t add1_fast(const add_consts *c, int32_t x, int32_t y) {
    const int32_t a = mbqm_fast((x + c->o1) * (1 << 20), c->m1, c->e1, c->r1, c->n1);
    const int32_t b = mbqm_fast((y + c->o2) * (1 << 20), c->m2, c->e2, c->r2, c->n2);
    return (int8_t)ef_clamp(mbqm_fast(a + b, c->mo, c->eo, c->ro, c->no) + c->oo, c->lo, c->hi);
}

/* The common case of add1_fast (MobileNet residuals): an output exponent >= 1, no activation narrower than int8,
 * and the output offset folded into the final rounding term (ro_z = 2^(eo-1) + oo 2^eo, below 2^30 in magnitude).
 * Out of line with its constants in locals, so that they stay in registers. */
EF_NOINLINE static void add_fast_full(const add_consts *c, const int8_t *in1, const int8_t *in2, int8_t *out,
                                      int32_t n) {
    const int32_t o1 = c->o1 * (1 << 20), o2 = c->o2 * (1 << 20), m1 = c->m1, m2 = c->m2, mo = c->mo;
    const int32_t r1 = c->r1, r2 = c->r2, n1 = c->n1, n2 = c->n2, ro_z = c->ro + c->oo * (1 << c->eo);
    const int e1 = c->e1, e2 = c->e2, eo = c->eo;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t a = mbqm_fast(in1[i] * (1 << 20) + o1, m1, e1, r1, n1);
        const int32_t b = mbqm_fast(in2[i] * (1 << 20) + o2, m2, e2, r2, n2);
        out[i] = (int8_t)ef_sat8(ef_mbqm_fast_r(a + b, mo, eo, ro_z));
    }
}

/* Element i is written after both inputs' element i is read: the output may alias either input. */
int ef_add(const ef_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    add_consts c;
    int32_t i;
    int fast;
    const int32_t n = p->b.count;
    c.o1 = p->in1_offset, c.o2 = p->in2_offset, c.oo = p->out_offset, c.ls = p->left_shift;
    c.m1 = p->in1_mult, c.m2 = p->in2_mult, c.mo = p->out_mult, c.lo = p->act_min, c.hi = p->act_max;
    c.e1 = (int)-p->in1_shift, c.e2 = (int)-p->in2_shift, c.eo = (int)-p->out_shift;
    c.k1 = (int32_t)((1u << c.e1) - 1u), c.k2 = (int32_t)((1u << c.e2) - 1u), c.ko = (int32_t)((1u << c.eo) - 1u);
    c.r1 = c.k1 - (c.k1 >> 1), c.r2 = c.k2 - (c.k2 >> 1), c.ro = c.ko - (c.ko >> 1);
    c.n1 = c.e1 > 0 ? -1 : 0, c.n2 = c.e2 > 0 ? -1 : 0, c.no = c.eo > 0 ? -1 : 0;
    fast = c.ls == 20 && c.m1 > 0 && c.m2 > 0 && c.mo > 0 && c.e1 >= 0 && c.e2 >= 0 && c.eo >= 0;
    if (!p->b.broadcast) {
        if (fast && c.eo >= 1 && c.eo <= 21 && c.lo <= -128 && c.hi >= 127)
            add_fast_full(&c, in1, in2, out, n);
        else if (fast)
            for (i = 0; i < n; ++i) out[i] = add1_fast(&c, in1[i], in2[i]);
        else
            for (i = 0; i < n; ++i) out[i] = add1(&c, in1[i], in2[i]);
    } else {
        /* row by row over the innermost dim (per-channel operands: a channel vector against an image) */
        const int32_t row = p->b.shape[p->b.ndim - 1], s1 = p->b.stride1[p->b.ndim - 1];
        const int32_t s2 = p->b.stride2[p->b.ndim - 1];
        int32_t idx[EF_MAX_DIMS] = {0}, o1 = 0, o2 = 0, j;
        for (i = 0; i < n; i += row) {
            const int8_t *x = in1 + o1, *y = in2 + o2;
            if (fast)
                for (j = 0; j < row; ++j) out[i + j] = add1_fast(&c, x[j * s1], y[j * s2]);
            else
                for (j = 0; j < row; ++j) out[i + j] = add1(&c, x[j * s1], y[j * s2]);
            ef_bcast_next_row(&p->b, idx, &o1, &o2);
        }
    }
    return 0;
}
