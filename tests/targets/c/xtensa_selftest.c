/* Xtensa twin self-test: semihosting console, instruction counting with CCOUNT, stack painting below a mark. */
#include <stdint.h>
#include <string.h>
#include "ef_board.h"

static void put(const char *s) { ef_board_write(s, strlen(s)); }
static void put_u64(uint64_t v) {
    char b[24]; int i = 23; b[i] = 0;
    do { b[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    put(&b[i]);
}
__attribute__((noinline)) static int deep(volatile char *p, int n) {
    volatile char buf[512];
    buf[0] = (char)n;
    buf[511] = p[0];
    return n > 0 ? deep(buf, n - 1) + buf[511] : buf[0];
}
int main(void) {
    ef_board_init();
    put("hello from qemu_lx106\n");
    uint32_t n = 1000000;
    uint64_t t0 = ef_board_now();
    __asm__ __volatile__(
        "1: addi %0, %0, -1\n"
        "   bnez %0, 1b\n" : "+r"(n));
    uint64_t t1 = ef_board_now();
    put("loop insns "); put_u64(t1 - t0); put("\n");
    t0 = ef_board_now(); t1 = ef_board_now();
    put("empty "); put_u64(t1 - t0); put("\n");
    ef_board_stack_mark();
    char c = 1;
    deep(&c, 3);  /* four frames of a 512-byte buffer each below the mark */
    put("stack "); put_u64(ef_board_stack_used()); put("\n");
    return 0;
}
