/* MAXIMUM / MINIMUM, int8 (reference_ops::MaximumMinimumBroadcastSlow: raw values compared, both inputs and the
 * output share one quantisation, which codegen checks). */
#include "ef_runtime.h"

int ef_maximum_minimum(const ef_minmax_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    int32_t i, idx[EF_MAX_DIMS] = {0}, o1 = 0, o2 = 0;
    for (i = 0; i < p->b.count; ++i) {
        const int8_t a = in1[o1], b = in2[o2];
        out[i] = p->is_max ? (a > b ? a : b) : (a < b ? a : b);
        ef_bcast_offsets(&p->b, idx, &o1, &o2);
    }
    return 0;
}
