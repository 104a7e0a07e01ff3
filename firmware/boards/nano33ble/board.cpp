/* Board layer for the Arduino Nano 33 BLE (Sense): nRF52840, Cortex-M4F at 64 MHz, Arduino mbed core.
 *
 * Time: the DWT cycle counter (CYCCNT, 32 bit at 64 MHz = wraps after 67 s), extended to 64 bit in software
 * (every read notices a wrap; one inference is far shorter than 67 s), reported in microseconds.
 * Stack (ef_stack.h): at the benchmark's entry the main thread's free stack below the harness is painted, from the
 * bottom of the thread's stack memory (RTX's thread record: stack_mem; its first words hold RTX's overflow magic and
 * are left alone) up to the current stack pointer; "stack" is how deep the benchmark wrote into it. Without the RTX
 * headers only EF_STACK_PAINT_BYTES below the mark are painted (safe for mbed's smallest thread stacks).
 * Heap: the largest block malloc() can still return, i.e. the largest allocatable block of internal RAM (the
 * nRF52840 has no other), found by bisection outside the timed runs. */
#include <Arduino.h>
#include <stdlib.h>
#if defined(__has_include)
#if __has_include(<mbed.h>) && __has_include(<rtx_os.h>)
#include <mbed.h>
#include <rtx_os.h>
#define EF_HAVE_RTX 1
#endif
#endif

#include "ef_board.h"
#include "ef_stack.h"

#ifndef EF_STACK_PAINT_BYTES
#define EF_STACK_PAINT_BYTES 2048
#endif
#define EF_STACK_GUARD 64u /* left unpainted at the bottom of the thread's stack: RTX's magic word lives there */

#define REG32(a) (*(volatile uint32_t *)(a))
#define DEMCR REG32(0xE000EDFCu)
#define DWT_CTRL REG32(0xE0001000u)
#define DWT_CYCCNT REG32(0xE0001004u)
#define EF_CPU_HZ 64000000u

static uint32_t last_cycles;
static uint64_t cycles_high;
static ef_stack_region stack_region;

extern "C" {

__attribute__((noinline)) void ef_board_stack_mark(void) {
    uintptr_t sp;
    __asm__ __volatile__("mov %0, sp" : "=r"(sp));
    uintptr_t lo = sp - EF_STACK_MARGIN - EF_STACK_PAINT_BYTES;
#ifdef EF_HAVE_RTX
    const osRtxThread_t *self = (const osRtxThread_t *)osThreadGetId();
    if (self != nullptr && self->stack_mem != nullptr) {
        const uintptr_t base = (uintptr_t)self->stack_mem + EF_STACK_GUARD;
        if (base < sp && sp - base <= self->stack_size) lo = base;  // sp is on this thread's stack
    }
#endif
    ef_stack_paint(&stack_region, lo, sp);
}

void ef_board_init(void) {
    Serial.begin(115200);
    unsigned long t0 = millis();
    while (!Serial && millis() - t0 < 5000) {
        delay(10);  // USB CDC: wait (bounded) for the host to open the port; it can ask for a re-run later
    }
    DEMCR |= (1u << 24);  // TRCENA: enable the DWT
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;       // CYCCNTENA
    last_cycles = 0;
    cycles_high = 0;
}

void ef_board_write(const char *s, size_t n) { Serial.write((const uint8_t *)s, n); }

uint64_t ef_board_now(void) {
    EF_BARRIER();
    uint32_t c = DWT_CYCCNT;
    EF_BARRIER();
    if (c < last_cycles) cycles_high += 1ull << 32;
    last_cycles = c;
    return (cycles_high + c) / (EF_CPU_HZ / 1000000u);
}

const char *ef_board_name(void) { return "nano33ble"; }
const char *ef_board_time_unit(void) { return "us"; }
uint32_t ef_board_clock_hz(void) { return EF_CPU_HZ; }

uint32_t ef_board_stack_used(void) { return ef_stack_high_water(&stack_region); }

int32_t ef_board_heap_free(void) {
    size_t lo = 0, hi = 512u * 1024u;  // more than the whole RAM
    while (hi - lo > 64) {
        size_t mid = (lo + hi) / 2;
        void *p = malloc(mid);
        if (p) {
            free(p);
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return (int32_t)lo;
}

int ef_board_alloc_arena(size_t n, void **arena) {
    *arena = malloc(n);
    return *arena != nullptr ? 0 : EF_ERR_ARENA_ALLOC;
}

void ef_board_exit(int status) { (void)status; }

}  // extern "C"
