/* AVERAGE_POOL_2D, int8 (TFLite reference_integer_ops::AveragePool: round half away from zero). */
#include "ef_quant.h"
#include "ef_runtime.h"

int ef_average_pool_2d(const ef_pool_params *p, const int8_t *in, int8_t *out) {
    int32_t oy, ox, c, ky, kx;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_t;
        const int32_t ky0 = iy0 < 0 ? -iy0 : 0, ky1 = p->k_h < p->in_h - iy0 ? p->k_h : p->in_h - iy0;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_l;
            const int32_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = p->k_w < p->in_w - ix0 ? p->k_w : p->in_w - ix0;
            const int32_t n = (ky1 - ky0) * (kx1 - kx0);
            int8_t *o = out + (oy * p->out_w + ox) * p->c;
            if (n <= 0) return -1;
            for (c = 0; c < p->c; ++c) {
                int32_t acc = 0;
                for (ky = ky0; ky < ky1; ++ky)
                    for (kx = kx0; kx < kx1; ++kx) acc += in[((iy0 + ky) * p->in_w + ix0 + kx) * p->c + c];
                acc = acc > 0 ? (acc + n / 2) / n : (acc - n / 2) / n;
                o[c] = (int8_t)ef_clamp(acc, p->act_min, p->act_max);
            }
        }
    }
    return 0;
}
