/* QEMU twin self-test: UART output, FPU enabled at reset, instruction counting, stack painting. */
#include <stdint.h>
#include <string.h>
#include "ef_board.h"

static void put(const char *s) { ef_board_write(s, strlen(s)); }
static void put_u64(uint64_t v) {
    char b[24]; int i = 23; b[i] = 0;
    do { b[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    put(&b[i]);
}
volatile float fx = 1.5f;
int main(void) {
    ef_board_init();
    put("hello from qemu_an386\n");
    float y = fx * 2.25f;               /* FPU must be on */
    put("float ok "); put_u64((uint64_t)(y * 1000)); put("\n");
    uint32_t n = 1000000;
    uint64_t t0 = ef_board_now();
    __asm__ __volatile__(
        "1: subs %0, %0, #1\n"
        "   bne 1b\n" : "+r"(n) :: "cc");
    uint64_t t1 = ef_board_now();
    put("loop insns "); put_u64(t1 - t0); put("\n");
    t0 = ef_board_now(); t1 = ef_board_now();
    put("empty "); put_u64(t1 - t0); put("\n");
    put("stack "); put_u64(ef_board_stack_used()); put("\n");
    return 0;
}
