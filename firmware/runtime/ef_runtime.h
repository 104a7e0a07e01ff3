/* edgefold micro runtime: kernel parameter blocks and entry points.
 * C99, int8 (plus the float ops that mixed-precision TFLite exports contain), no heap, TFLite semantics.
 * The code generator (edgefold.compiler.codegen) fills the parameter blocks at build time (const, in flash) and
 * plans every buffer into one static arena. Layout is NHWC; weights are OHWI (conv), 1HWO (depthwise), OI (FC). */
#ifndef EF_RUNTIME_H
#define EF_RUNTIME_H

#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EF_MAX_DIMS 6

/* EF_CHANNEL_RQ: the per-output-channel records {bias, multiplier, exponent e, 2^(e-1) + out_offset x 2^e} that
 * rq_fast layers carry in place of bias / mult / shift: the operands of ef_mbqm_fast_r, whose rounding term then
 * adds the output zero point too. */
typedef struct {
    int32_t in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_t, pad_l;
    int32_t in_offset, out_offset, act_min, act_max;
    int32_t depth_mult;         /* depthwise only */
    int32_t groups;             /* conv only: 0 or 1 = ordinary; else in_c / groups channels per filter */
    int32_t k_row;              /* conv only: 0, or the weights' row length k_w x channels padded with zeros to x4 */
    const int8_t *weights;      /* OHWI (conv) / 1HWO (depthwise) */
    const int32_t *bias;        /* may be NULL */
    const int32_t *mult;        /* per output channel */
    const int32_t *shift;
    const int32_t *bias_full;   /* depthwise, may be NULL: bias + in_offset x the channel's whole-window weight sum */
    int32_t rq_fast;            /* 1: ef_mbqm_fast is exact for every channel (checked by the code generator) */
    const int32_t *channel_rq;  /* may be NULL, else it replaces bias / mult / shift: see EF_CHANNEL_RQ */
    int32_t pointwise;          /* conv: 8 = 1x1, stride 1, no padding, 8 input channels, channel_rq set: conv_2d.c's
                                 * register-resident kernel; 0 = the generic path */
    const int8_t *pad_run;      /* depthwise, may be NULL: in_c bytes of the input zero point (padding taps) */
} ef_conv_params;

typedef struct {
    int32_t batches, in_c, out_c;
    int32_t in_offset, filter_offset, out_offset, act_min, act_max;
    int32_t per_channel;        /* mult/shift has out_c entries, else 1 */
    const int8_t *weights;      /* out_c x in_c */
    const int32_t *bias;
    const int32_t *mult;
    const int32_t *shift;
    int32_t rq_fast;            /* as in ef_conv_params */
    const int32_t *channel_rq;  /* may be NULL, else it replaces bias / mult / shift: see EF_CHANNEL_RQ */
} ef_fc_params;

typedef struct {
    int32_t in_h, in_w, c, out_h, out_w, k_h, k_w, stride_h, stride_w, pad_t, pad_l;
    int32_t act_min, act_max;
    float act_min_f, act_max_f;
} ef_pool_params;

/* Element-wise binary op on up to EF_MAX_DIMS dims with broadcasting: strides are element strides of each input
 * laid over the output shape (0 on broadcast dims). */
typedef struct {
    int32_t ndim, count, broadcast;
    int32_t shape[EF_MAX_DIMS];
    int32_t stride1[EF_MAX_DIMS], stride2[EF_MAX_DIMS];
} ef_bcast;

typedef struct {
    ef_bcast b;
    int32_t in1_offset, in2_offset, out_offset, left_shift;
    int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift;
    int32_t act_min, act_max;
} ef_add_params;

typedef struct {
    ef_bcast b;
    int32_t in1_offset, in2_offset, out_offset, out_mult, out_shift, act_min, act_max;
} ef_mul_params;

enum { EF_F32_ADD = 0, EF_F32_SUB = 1, EF_F32_MUL = 2, EF_F32_SQDIFF = 3, EF_F32_DIV = 4 };
typedef struct {
    ef_bcast b;
    int32_t op;
    float act_min, act_max;
} ef_f32_binary_params;

typedef struct {
    int32_t outer, reduce, inner;          /* input viewed as outer x reduce x inner, reduce axes contiguous */
    int32_t in_zp, out_zp, mult, shift;    /* int8 only: multiplier already folded with 1/num_elements */
} ef_mean_params;

typedef struct {
    int32_t ndim;                          /* <= 4, input shape padded on the left with 1s */
    int32_t in_shape[4], pad_before[4], pad_after[4];
    int32_t elem_size;
    const void *pad_value;
} ef_pad_params;

typedef struct {
    int32_t count;
    float scale;                           /* output scale (quantize) or input scale (dequantize) */
    int32_t zero_point;
    int32_t in_zp, mult, shift;            /* int8 -> int8 requantize */
} ef_qdq_params;

typedef struct {
    int32_t ndim, elem_size, count;
    int32_t out_shape[EF_MAX_DIMS];
    int32_t in_stride[EF_MAX_DIMS];        /* input element stride for each output dim (transpose/slice) */
    int32_t in_start;                      /* element offset of the first read (slice) */
} ef_gather_params;

typedef struct {
    int32_t outer, depth;
    float beta;
    int32_t mult, left_shift, diff_min;    /* int8: input * beta multiplier (Q5.26) and the smallest kept diff */
} ef_softmax_params;

typedef struct {
    int32_t batches, rows, inner, cols;    /* out[b] = lhs[b] (rows x inner) * rhs[b] (inner x cols) */
    int32_t lhs_batch_stride, rhs_batch_stride;
    int32_t rhs_row_stride, rhs_col_stride; /* adj_y handled by strides */
    int32_t lhs_offset, rhs_offset, out_offset, mult, shift, act_min, act_max;
} ef_bmm_params;

typedef struct {
    int32_t count;
} ef_unary_params;

/* Element-wise int8 maps (LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, RELU, RELU6, RSQRT): what each TFLM Prepare
 * computes. */
typedef struct {
    int32_t count, in_zp, out_zp;
    int32_t mult, shift;       /* LOGISTIC/TANH: input multiplier and left shift; HARD_SWISH: output (Q0.15);
                                * LEAKY_RELU: identity; RSQRT: 1 / (sqrt(in_scale) out_scale) */
    int32_t mult2, shift2;     /* HARD_SWISH: reluish (Q0.15); LEAKY_RELU: |alpha| */
    int32_t radius;            /* LOGISTIC/TANH: input range radius; LEAKY_RELU: 1 if alpha < 0 */
    int32_t act_min, act_max;  /* RELU: output clamp; RELU6: input clamp (same scale, no rescale) */
} ef_act_params;

typedef struct {
    ef_bcast b;
    int32_t is_max;
} ef_minmax_params;

typedef struct {
    int32_t rows, row_bytes, in_stride, out_stride;   /* bytes */
} ef_rows_params;

int ef_conv_2d(const ef_conv_params *p, const int8_t *in, int8_t *out, int32_t *scratch);
int ef_depthwise_conv_2d(const ef_conv_params *p, const int8_t *in, int8_t *out);
int ef_fully_connected(const ef_fc_params *p, const int8_t *in, int8_t *out, int32_t *scratch);
int ef_add(const ef_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
int ef_mul(const ef_mul_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
int ef_f32_binary(const ef_f32_binary_params *p, const float *in1, const float *in2, float *out);
int ef_max_pool_2d(const ef_pool_params *p, const int8_t *in, int8_t *out);
int ef_average_pool_2d(const ef_pool_params *p, const int8_t *in, int8_t *out);
int ef_mean(const ef_mean_params *p, const int8_t *in, int8_t *out);
int ef_mean_f32(const ef_mean_params *p, const float *in, float *out);
int ef_pad(const ef_pad_params *p, const void *in, void *out);
int ef_quantize(const ef_qdq_params *p, const float *in, int8_t *out);
int ef_requantize(const ef_qdq_params *p, const int8_t *in, int8_t *out);
int ef_dequantize(const ef_qdq_params *p, const int8_t *in, float *out);
int ef_gather(const ef_gather_params *p, const void *in, void *out);   /* TRANSPOSE, SLICE, STRIDED_SLICE */
int ef_softmax(const ef_softmax_params *p, const int8_t *in, int8_t *out);
int ef_softmax_f32(const ef_softmax_params *p, const float *in, float *out);
int ef_batch_matmul(const ef_bmm_params *p, const int8_t *lhs, const int8_t *rhs, int8_t *out);
int ef_batch_matmul_f32(const ef_bmm_params *p, const float *lhs, const float *rhs, float *out);
int ef_rsqrt_f32(const ef_unary_params *p, const float *in, float *out);
int ef_rsqrt(const ef_act_params *p, const int8_t *in, int8_t *out);
int ef_sub(const ef_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
int ef_squared_difference(const ef_add_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
int ef_maximum_minimum(const ef_minmax_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
int ef_logistic(const ef_act_params *p, const int8_t *in, int8_t *out);
int ef_tanh(const ef_act_params *p, const int8_t *in, int8_t *out);
int ef_hard_swish(const ef_act_params *p, const int8_t *in, int8_t *out);
int ef_leaky_relu(const ef_act_params *p, const int8_t *in, int8_t *out);
int ef_relu(const ef_act_params *p, const int8_t *in, int8_t *out);
int ef_relu6(const ef_act_params *p, const int8_t *in, int8_t *out);
int ef_copy_rows(const ef_rows_params *p, const void *in, void *out);   /* CONCATENATION, one input per call */
void ef_copy(void *dst, const void *src, int32_t n);

/* Walks the output index space of a broadcast op, returning input element offsets. */
/* Advance the multi-index over dims d..0 (innermost first), moving both inputs' offsets with it. */
static inline void ef_bcast_advance(const ef_bcast *b, int d, int32_t *idx, int32_t *o1, int32_t *o2) {
    for (; d >= 0; --d) {
        idx[d]++;
        *o1 += b->stride1[d];
        *o2 += b->stride2[d];
        if (idx[d] < b->shape[d]) return;
        *o1 -= b->stride1[d] * b->shape[d];
        *o2 -= b->stride2[d] * b->shape[d];
        idx[d] = 0;
    }
}

static inline void ef_bcast_offsets(const ef_bcast *b, int32_t *idx, int32_t *o1, int32_t *o2) {
    ef_bcast_advance(b, b->ndim - 1, idx, o1, o2);
}

/* The same walk a row at a time: the innermost dim is a run (input strides stride1/2[ndim - 1], 0 or 1) that the
 * caller loops over; this advances the row-start offsets over the outer dims. */
static inline void ef_bcast_next_row(const ef_bcast *b, int32_t *idx, int32_t *o1, int32_t *o2) {
    ef_bcast_advance(b, b->ndim - 2, idx, o1, o2);
}

static inline int32_t ef_read32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

#ifdef __cplusplus
}
#endif

#endif /* EF_RUNTIME_H */
