/* Integer helpers GCC calls on the lx106 core (no 32x32->64 multiply, no divide instruction) that the Debian
 * libgcc for xtensa-lx106-elf does not contain: __umulsidi3, __muldi3, __udivsi3, __umodsi3, __divsi3, __udivdi3,
 * __umoddi3, __divdi3. Written from the arithmetic; the 64-bit divisions use libgcc's own __udivmoddi4 and
 * __divmoddi4 (which it does contain, and which need the 32-bit ones below).
 *
 * The micro runtime's requantisation (a 32x32->64 signed product per output value) runs on __muldi3, so its cost is
 * part of the twin's instruction count; the ESP32's LX6 has MULSH/MULUH and QUOS/QUOU and needs none of this
 * (docs/targets.md). Only the twin links this file. */
#include <stdint.h>

uint64_t __umulsidi3(uint32_t a, uint32_t b);
int64_t __muldi3(int64_t a, int64_t b);
uint32_t __udivsi3(uint32_t n, uint32_t d);
uint32_t __umodsi3(uint32_t n, uint32_t d);
int32_t __divsi3(int32_t n, int32_t d);
uint64_t __udivdi3(uint64_t n, uint64_t d);
uint64_t __umoddi3(uint64_t n, uint64_t d);
int64_t __divdi3(int64_t n, int64_t d);
uint64_t __udivmoddi4(uint64_t n, uint64_t d, uint64_t *rem);
int64_t __divmoddi4(int64_t n, int64_t d, int64_t *rem);

/* a * b = (a1 2^16 + a0)(b1 2^16 + b0) = a1 b1 2^32 + (a1 b0 + a0 b1) 2^16 + a0 b0, each partial product a 16x16
 * multiply (MUL16U); the low word is one MULL. */
uint64_t __umulsidi3(uint32_t a, uint32_t b) {
    const uint32_t a0 = a & 0xFFFFu, a1 = a >> 16, b0 = b & 0xFFFFu, b1 = b >> 16;
    const uint32_t p00 = a0 * b0, p11 = a1 * b1;
    const uint32_t p01 = a0 * b1, p10 = a1 * b0;
    const uint32_t mid = p01 + p10;
    const uint32_t mid_carry = mid < p01 ? 0x10000u : 0u; /* the carry out of mid weighs 2^48 = 2^16 in hi */
    const uint32_t lo = p00 + (mid << 16);
    const uint32_t lo_carry = lo < p00 ? 1u : 0u;
    const uint32_t hi = p11 + (mid >> 16) + mid_carry + lo_carry;
    return ((uint64_t)hi << 32) | lo;
}

/* The low 64 bits of a 64x64 product: al bl in full, plus (ah bl + al bh) 2^32 (their high halves fall off). Two's
 * complement makes it the signed product as well. */
int64_t __muldi3(int64_t a, int64_t b) {
    const uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
    const uint32_t al = (uint32_t)ua, ah = (uint32_t)(ua >> 32), bl = (uint32_t)ub, bh = (uint32_t)(ub >> 32);
    const uint64_t p = __umulsidi3(al, bl);
    const uint32_t hi = (uint32_t)(p >> 32) + ah * bl + al * bh;
    return (int64_t)(((uint64_t)hi << 32) | (uint32_t)p);
}

/* Restoring division: align the divisor's leading one with the dividend's (NSAU), then one compare-and-subtract
 * per quotient bit. Division by zero traps (illegal instruction), as C leaves it undefined. */
static uint32_t udivmod32(uint32_t n, uint32_t d, uint32_t *rem) {
    if (d == 0) __builtin_trap();
    if (d > n) {
        *rem = n;
        return 0;
    }
    const int shift = __builtin_clz(d) - __builtin_clz(n);
    uint32_t q = 0;
    d <<= shift;
    for (int i = 0; i <= shift; i++) {
        q <<= 1;
        if (n >= d) {
            n -= d;
            q |= 1u;
        }
        d >>= 1;
    }
    *rem = n;
    return q;
}

uint32_t __udivsi3(uint32_t n, uint32_t d) {
    uint32_t r;
    return udivmod32(n, d, &r);
}

uint32_t __umodsi3(uint32_t n, uint32_t d) {
    uint32_t r;
    udivmod32(n, d, &r);
    return r;
}

/* C division truncates toward zero: divide the magnitudes, negate when the signs differ. */
int32_t __divsi3(int32_t n, int32_t d) {
    const uint32_t un = n < 0 ? 0u - (uint32_t)n : (uint32_t)n;
    const uint32_t ud = d < 0 ? 0u - (uint32_t)d : (uint32_t)d;
    uint32_t r;
    const uint32_t q = udivmod32(un, ud, &r);
    return (int32_t)((n < 0) != (d < 0) ? 0u - q : q);
}

uint64_t __udivdi3(uint64_t n, uint64_t d) { return __udivmoddi4(n, d, 0); }

uint64_t __umoddi3(uint64_t n, uint64_t d) {
    uint64_t r;
    __udivmoddi4(n, d, &r);
    return r;
}

int64_t __divdi3(int64_t n, int64_t d) {
    int64_t r; /* libgcc's __divmoddi4 stores the remainder unconditionally: never pass it NULL */
    return __divmoddi4(n, d, &r);
}
