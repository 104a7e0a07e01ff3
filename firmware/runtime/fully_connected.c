/* FULLY_CONNECTED, int8 (TFLite reference_integer_ops::FullyConnected / FullyConnectedPerChannel semantics). */
#include "ef_quant.h"
#include "ef_runtime.h"
#include "ef_matmul.h"

int ef_fully_connected(const ef_fc_params *p, const int8_t *in, int8_t *out, int32_t *scratch) {
    int32_t b, o, i;
#if defined(EF_PACKED)
    if (p->filter_offset == 0) {
        const int32_t k = p->in_c;
        const ef_mm_out q = {p->bias, p->mult, p->shift, p->per_channel, p->out_offset, p->act_min, p->act_max,
                             p->rq_fast, p->channel_rq};
        for (b = 0; b < p->batches; b += 2) {
            const int two = b + 1 < p->batches;
            ef_col_fill(scratch, 0, 0, k, in + b * k, k, p->in_offset);
            if (two)
                ef_col_fill(scratch, 1, 0, k, in + (b + 1) * k, k, p->in_offset);
            else
                ef_col_zero(scratch, 1, 0, k, k);
            ef_mm_cols(p->weights, p->out_c, k, scratch, two, &q, out + b * p->out_c, out + (b + 1) * p->out_c);
        }
        return 0;
    }
#endif
    (void)scratch;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = in + b * p->in_c;
        for (o = 0; o < p->out_c; ++o) {
            const int8_t *w = p->weights + o * p->in_c;
            const int32_t q = p->per_channel ? o : 0;
            int32_t acc = 0;
            for (i = 0; i < p->in_c; ++i) acc += (x[i] + p->in_offset) * (w[i] + p->filter_offset);
            if (p->channel_rq) {
                const int32_t *r = p->channel_rq + 4 * o;
                out[b * p->out_c + o] = (int8_t)ef_clamp(ef_channel_rq(acc + r[0], r), p->act_min,
                                                         p->act_max);
                continue;
            }
            if (p->bias) acc += p->bias[o];
            acc = ef_mbqm(acc, p->mult[q], p->shift[q]) + p->out_offset;
            out[b * p->out_c + o] = (int8_t)ef_clamp(acc, p->act_min, p->act_max);
        }
    }
    return 0;
}
