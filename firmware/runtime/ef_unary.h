/* edgefold micro runtime: element-wise int8 -> int8 maps (internal). An int8 input has 256 values, so for tensors
 * larger than that the kernel's own per-element function fills a 256-entry table on the stack first: the same
 * arithmetic, evaluated once per value instead of once per element. */
#ifndef EF_UNARY_H
#define EF_UNARY_H

#include "ef_runtime.h"

#define EF_MAP_INT8(p, in, out, fn)                                                 \
    do {                                                                            \
        int32_t i_;                                                                 \
        const int32_t n_ = (p)->count;                                              \
        if (n_ > 256) {                                                             \
            int8_t lut_[256];                                                       \
            for (i_ = 0; i_ < 256; ++i_) lut_[i_] = fn((p), i_ - 128);              \
            for (i_ = 0; i_ < n_; ++i_) (out)[i_] = lut_[(in)[i_] + 128];           \
        } else {                                                                    \
            for (i_ = 0; i_ < n_; ++i_) (out)[i_] = fn((p), (in)[i_]);              \
        }                                                                           \
    } while (0)

#endif /* EF_UNARY_H */
