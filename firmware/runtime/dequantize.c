/* DEQUANTIZE: int8 -> float32, computed in double like reference_ops::Dequantize. */
#include "ef_runtime.h"

int ef_dequantize(const ef_qdq_params *p, const int8_t *in, float *out) {
    int32_t i;
    const double scale = (double)p->scale;
    for (i = 0; i < p->count; ++i) out[i] = (float)(scale * (double)((int32_t)in[i] - p->zero_point));
    return 0;
}
