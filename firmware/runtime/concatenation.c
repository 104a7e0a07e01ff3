/* CONCATENATION: each input is copied, row by row, into its column band of the output (one call per input;
 * TFLM requires identical quantisation on all inputs and the output, so this is a pure copy). */
#include "ef_runtime.h"

int ef_copy_rows(const ef_rows_params *p, const void *in, void *out) {
    const uint8_t *s = (const uint8_t *)in;
    uint8_t *d = (uint8_t *)out;
    int32_t r;
    for (r = 0; r < p->rows; ++r) memcpy(d + r * p->out_stride, s + r * p->in_stride, (size_t)p->row_bytes);
    return 0;
}
