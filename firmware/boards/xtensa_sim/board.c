/* Board layer of the Xtensa lx106 twin of the ESP-EYE: QEMU `-M sim -cpu lx106 -semihosting -icount shift=0`.
 *
 * Serial: QEMU's Xtensa semihosting (the SIMCALL instruction: a2 = call number, a3.. = arguments; result in a2,
 * errno in a3). write(1, ...) goes to the machine's first serial device (`-serial`), so the host reads the EF1 lines
 * exactly like a board's UART; exit(status) ends QEMU with that status.
 *
 * Counting: with -icount shift=0 each guest instruction advances virtual time by 1 ns. QEMU's lx106 core runs its
 * CCOUNT special register at the configured 40 MHz of virtual time, i.e. one tick per 25 instructions (1e9 ns/s / 40
 * MHz); a wrap check on every read extends the 32-bit register to 64 bits (one wrap is 107e9 instructions, far longer
 * than a run).
 */
#include <stddef.h>
#include <stdint.h>

#include "ef_board.h"
#include "ef_stack.h"

#define SYS_EXIT 1
#define SYS_WRITE 4

extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end, __stack_limit, __stack_top;
extern void (*__init_array_start[])(void), (*__init_array_end[])(void);
extern int main(void);
void ef_c_startup(void);
void ef_board_fault(int vector, uint32_t cause, uint32_t pc);

static uint32_t last_ccount;
static uint64_t ccount_high;
static ef_stack_region stack_region;

static int32_t simcall(int32_t call, int32_t a, int32_t b, int32_t c) {
    register int32_t a2 __asm__("a2") = call;
    register int32_t a3 __asm__("a3") = a;
    register int32_t a4 __asm__("a4") = b;
    register int32_t a5 __asm__("a5") = c;
    __asm__ __volatile__("simcall" : "+r"(a2), "+r"(a3) : "r"(a4), "r"(a5) : "memory");
    return a2;
}

void ef_board_write(const char *s, size_t n) {
    while (n > 0) {
        int32_t w = simcall(SYS_WRITE, 1, (int32_t)(uintptr_t)s, (int32_t)n);
        if (w <= 0) return; /* the host side is gone: nothing left to tell it */
        s += w;
        n -= (size_t)w;
    }
}

static uint32_t ccount(void) {
    uint32_t c;
    __asm__ __volatile__("rsr.ccount %0" : "=r"(c)::"memory");
    return c;
}

uint64_t ef_board_now(void) {
    EF_BARRIER();
    uint32_t c = ccount();
    EF_BARRIER();
    if (c < last_ccount) ccount_high += (uint64_t)1 << 32;
    last_ccount = c;
    const uint64_t ticks = ccount_high + c;
    /* x 25 as 16x + 8x + x: the lx106 has no 64-bit multiply, and a __muldi3 call would lengthen every interval */
    return (ticks << 4) + (ticks << 3) + ticks;
}

const char *ef_board_name(void) { return "qemu_lx106"; }
const char *ef_board_time_unit(void) { return "instructions"; }
uint32_t ef_board_clock_hz(void) { return 240000000u; } /* the ESP32 this twin stands for */

static uintptr_t stack_pointer(void) {
    uintptr_t sp;
    __asm__ __volatile__("mov %0, a1" : "=r"(sp));
    return sp;
}

__attribute__((noinline)) void ef_board_stack_mark(void) {
    ef_stack_paint(&stack_region, (uintptr_t)&__stack_limit, stack_pointer());
}

uint32_t ef_board_stack_used(void) { return ef_stack_high_water(&stack_region); }

int32_t ef_board_heap_free(void) { return -1; } /* no heap on the twin: the runtime plans a static arena */

int ef_board_alloc_arena(size_t n, void **arena) {
    (void)n;
    *arena = NULL;
    return EF_ERR_ARENA_ALLOC;
}

void ef_board_init(void) {
    last_ccount = ccount();
    ccount_high = 0;
}

void ef_board_exit(int status) {
    (void)status; /* the protocol's END (or FAULT) record carries the status; QEMU's exit code is 0 either way */
    simcall(SYS_EXIT, 0, 0, 0);
    for (;;) {
    }
}

/* Called from startup.S once the stack is set. */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void ef_c_startup(void) {
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end) *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end; dst++) *dst = 0;
    /* without a later ef_board_stack_mark() the stack figure covers the whole program */
    ef_stack_paint(&stack_region, (uintptr_t)&__stack_limit, stack_pointer());
    stack_region.ref = (uintptr_t)&__stack_top;
    for (void (**f)(void) = __init_array_start; f < __init_array_end; f++) (*f)();
    ef_board_exit(main());
}

/* ---- faults: say so on the serial link (the host parser turns FAULT into a DeviceError), then leave ---- */
static void put_hex(uint32_t v) {
    static const char hex[] = "0123456789abcdef";
    char b[10] = {'0', 'x'};
    for (int i = 0; i < 8; i++) b[2 + i] = hex[(v >> (28 - 4 * i)) & 0xFu];
    ef_board_write(b, sizeof b);
}

static const char *cause_name(uint32_t cause) {
    switch (cause) {
        case 0: return "illegal-instruction";
        case 2: return "instruction-fetch-error";
        case 3: return "load-store-error";
        case 6: return "integer-divide-by-zero";
        case 9: return "load-store-alignment";
        case 12: return "instruction-pif-data-error";
        case 13: return "load-store-pif-data-error";
        case 14: return "instruction-pif-address-error";
        case 15: return "load-store-pif-address-error"; /* nothing mapped there */
        case 20: return "instruction-fetch-prohibited";
        case 28: return "load-prohibited";
        case 29: return "store-prohibited";
        default: return "exception";
    }
}

void ef_board_fault(int vector, uint32_t cause, uint32_t pc) {
    static const char *const vectors[] = {"", "kernel-", "debug-", "nmi-", "double-"};
    const char *v = vectors[vector >= 0 && vector <= 4 ? vector : 0];
    const char *name = cause_name(cause);
    const char *p;
    ef_board_write("\nEF1 FAULT type=", 16);
    for (p = v; *p; p++) {
    }
    ef_board_write(v, (size_t)(p - v));
    for (p = name; *p; p++) {
    }
    ef_board_write(name, (size_t)(p - name));
    ef_board_write(" cause=", 7);
    put_hex(cause);
    ef_board_write(" pc=", 4);
    put_hex(pc);
    ef_board_write("\n", 1);
    ef_board_exit(99);
}
