/* Board layer for the Arduino Nano 33 BLE (Sense): nRF52840, Cortex-M4F at 64 MHz, Arduino mbed core.
 *
 * Time: the DWT cycle counter (CYCCNT, 32 bit at 64 MHz = wraps after 67 s), extended to 64 bit in software
 * (every read notices a wrap; one inference is far shorter than 67 s), reported in microseconds.
 * Stack: the part of the main thread's stack below the frame of ef_board_init() is painted at start-up and
 * scanned after the runs, so "stack" is what the benchmark used below setup(). The thread's stack size comes from
 * CMSIS-RTOS2 (osThreadGetStackSize); we stay EF_STACK_HEADROOM bytes clear of its bottom because the part already
 * in use above setup() is unknown. Without the RTOS API only EF_STACK_PAINT_BYTES (safe for mbed's 4 KB default)
 * are painted. Heap: the largest block malloc() can still return (probed, outside the timed runs). */
#include <Arduino.h>
#include <stdlib.h>
#if defined(__has_include)
#if __has_include(<mbed.h>)
#include <mbed.h>
#define EF_HAVE_RTOS2 1
#endif
#endif

#include "ef_board.h"

#ifndef EF_STACK_PAINT_BYTES
#define EF_STACK_PAINT_BYTES 2048
#endif
#ifndef EF_STACK_HEADROOM
#define EF_STACK_HEADROOM 2048
#endif
#define EF_PAINT 0xA5C3E17Bu

#define REG32(a) (*(volatile uint32_t *)(a))
#define DEMCR REG32(0xE000EDFCu)
#define DWT_CTRL REG32(0xE0001000u)
#define DWT_CYCCNT REG32(0xE0001004u)
#define EF_CPU_HZ 64000000u

static uint32_t last_cycles;
static uint64_t cycles_high;
static uint32_t *paint_lo, *paint_hi;

extern "C" {

__attribute__((noinline)) static void paint_stack(void) {
    uintptr_t sp;
    __asm__ __volatile__("mov %0, sp" : "=r"(sp));
    size_t paint = EF_STACK_PAINT_BYTES;
#ifdef EF_HAVE_RTOS2
    uint32_t size = osThreadGetStackSize(osThreadGetId());
    if (size > EF_STACK_HEADROOM + 256u) paint = size - EF_STACK_HEADROOM - 256u;
#endif
    paint_hi = (uint32_t *)((sp - 256u) & ~(uintptr_t)3u);
    paint_lo = paint_hi - paint / 4;
    for (volatile uint32_t *p = paint_lo; p < paint_hi; p++) *p = EF_PAINT;
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
    paint_stack();
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

uint32_t ef_board_stack_used(void) {
    if (paint_lo == nullptr) return 0;
    const uint32_t *p = paint_lo;
    while (p < paint_hi && *p == EF_PAINT) p++;
    return (uint32_t)((uintptr_t)paint_hi - (uintptr_t)p);
}

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

void *ef_board_alloc_arena(size_t n) { return malloc(n); }

void ef_board_exit(int status) { (void)status; }

}  // extern "C"
