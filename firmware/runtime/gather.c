/* TRANSPOSE, SLICE, STRIDED_SLICE: a strided gather (output in raster order, input addressed by
 * per-dimension strides). A unit-stride innermost dimension is copied as one run. */
#include "ef_runtime.h"

int ef_gather(const ef_gather_params *p, const void *in, void *out) {
    int32_t idx[EF_MAX_DIMS] = {0}, i, d, src = p->in_start;
    const int32_t es = p->elem_size, last = p->ndim - 1;
    const int32_t run = (last >= 0 && p->in_stride[last] == 1) ? p->out_shape[last] : 1;
    const int32_t walk = run > 1 ? last : p->ndim;   /* dimensions stepped between runs */
    const uint8_t *s = (const uint8_t *)in;
    uint8_t *o = (uint8_t *)out;
    for (i = 0; i < p->count; i += run) {
        if (run == 1 && es == 1) o[i] = s[src];
        else memcpy(o + i * es, s + src * es, (size_t)(run * es));
        for (d = walk - 1; d >= 0; --d) {
            src += p->in_stride[d];
            if (++idx[d] < p->out_shape[d]) break;
            src -= p->in_stride[d] * p->out_shape[d];
            idx[d] = 0;
        }
    }
    return 0;
}
