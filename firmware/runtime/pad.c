/* PAD / PADV2 on up to 4 dims, int8 or float32 (pad value: the output zero point or the given constant). */
#include "ef_runtime.h"

int ef_pad(const ef_pad_params *p, const void *in, void *out) {
    const int32_t es = p->elem_size;
    int32_t os[4], d, a, b, c, e;
    const uint8_t *src = (const uint8_t *)in;
    uint8_t *dst = (uint8_t *)out;
    for (d = 0; d < 4; ++d) os[d] = p->pad_before[d] + p->in_shape[d] + p->pad_after[d];
    for (a = 0; a < os[0]; ++a)
        for (b = 0; b < os[1]; ++b)
            for (c = 0; c < os[2]; ++c)
                for (e = 0; e < os[3]; ++e, dst += es) {
                    const int32_t ia = a - p->pad_before[0], ib = b - p->pad_before[1];
                    const int32_t ic = c - p->pad_before[2], ie = e - p->pad_before[3];
                    if (ia < 0 || ia >= p->in_shape[0] || ib < 0 || ib >= p->in_shape[1] || ic < 0 ||
                        ic >= p->in_shape[2] || ie < 0 || ie >= p->in_shape[3])
                        memcpy(dst, p->pad_value, (size_t)es);
                    else
                        memcpy(dst, src + ((((ia * p->in_shape[1]) + ib) * p->in_shape[2] + ic) * p->in_shape[3] + ie) * es,
                               (size_t)es);
                }
    return 0;
}
