/* Byte copy (model input/output staging), without depending on the C library's memcpy symbol layout. */
#include "ef_runtime.h"

void ef_copy(void *dst, const void *src, int32_t n) {
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    while (n-- > 0) *d++ = *s++;
}
