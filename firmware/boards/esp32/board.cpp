/* Board layer for the ESP-EYE (ESP32, dual Xtensa LX6 at 240 MHz, 8 MB PSRAM of which 4 MB mapped), Arduino-ESP32
 * core 2.x. The figures mean what they mean on the Nano (ef_board.h):
 *
 * Time: esp_timer_get_time() (microseconds, 64 bit).
 * Stack (ef_stack.h): at the benchmark's entry the loop task's free stack below the harness is painted, from the
 * task's stack memory start (pxTaskGetStackStart(): its lowest address; the first bytes, where FreeRTOS keeps its
 * overflow canary, are left alone) up to the current stack pointer, and "stack" is how deep the benchmark wrote into
 * it. The start is trusted only if the stack pointer lies within getArduinoLoopTaskStackSize() bytes above it: that
 * is the loop task's real size, also when a sketch sets it with SET_LOOP_TASK_STACK_SIZE (which
 * CONFIG_ARDUINO_LOOP_STACK_SIZE is not). Otherwise (or without pxTaskGetStackStart) only what FreeRTOS's own
 * high-water mark proves free is painted: that many bytes below the stack pointer were never used.
 * Heap: the largest block allocatable from internal 8-bit RAM (PSRAM excluded), like the Nano's.
 * Arena (tflm with EF_ARENA_IN_HEAP): EF_PSRAM_THRESHOLD bytes or more go to PSRAM. A board without PSRAM
 * (psramFound() false: none fitted, or the build lacks BOARD_HAS_PSRAM) is reported as EF_ERR_NO_PSRAM instead of
 * silently measuring in internal RAM; smaller arenas go to internal RAM, which is faster. */
#include <Arduino.h>
#include <esp_heap_caps.h>
#include <esp_timer.h>
#include <freertos/FreeRTOS.h>
#include <freertos/task.h>

#include "ef_board.h"
#include "ef_stack.h"

#ifndef EF_PSRAM_THRESHOLD
#define EF_PSRAM_THRESHOLD (64 * 1024)
#endif
#define EF_STACK_GUARD 64u /* left unpainted at the low end of the task's stack (FreeRTOS's canary) */

static ef_stack_region stack_region;

static inline uintptr_t stack_pointer(void) {
#if defined(__XTENSA__)
    uintptr_t sp;
    __asm__ __volatile__("mov %0, a1" : "=r"(sp));
    return sp;
#else
    return (uintptr_t)__builtin_frame_address(0);  // the port's logic built for a host (tests/targets/c/esp32_host.cpp)
#endif
}

extern "C" {

__attribute__((noinline)) void ef_board_stack_mark(void) {
    const uintptr_t sp = stack_pointer();
    // ESP-IDF's FreeRTOS counts the stack in bytes: this many bytes at the bottom were never written
    uintptr_t lo = sp - (uintptr_t)uxTaskGetStackHighWaterMark(NULL) + EF_STACK_GUARD;
#if defined(INCLUDE_pxTaskGetStackStart) && INCLUDE_pxTaskGetStackStart
    const uintptr_t start = (uintptr_t)pxTaskGetStackStart(NULL) + EF_STACK_GUARD;
    if (start < sp && sp - start <= (uintptr_t)getArduinoLoopTaskStackSize()) lo = start;
#endif
    ef_stack_paint(&stack_region, lo, sp);
}

void ef_board_init(void) {
    Serial.begin(115200);
    delay(200);  // the CP2102 link is up from reset; give the host's terminal a moment after the DTR/RTS reset
}

void ef_board_write(const char *s, size_t n) { Serial.write((const uint8_t *)s, n); }

uint64_t ef_board_now(void) {
    EF_BARRIER();
    int64_t t = esp_timer_get_time();
    EF_BARRIER();
    return (uint64_t)t;
}

const char *ef_board_name(void) { return "esp-eye"; }
const char *ef_board_time_unit(void) { return "us"; }
uint32_t ef_board_clock_hz(void) { return (uint32_t)getCpuFrequencyMhz() * 1000000u; }

uint32_t ef_board_stack_used(void) { return ef_stack_high_water(&stack_region); }

int32_t ef_board_heap_free(void) {
    return (int32_t)heap_caps_get_largest_free_block(MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT);
}

int ef_board_alloc_arena(size_t n, void **arena) {
    if (n >= EF_PSRAM_THRESHOLD) {
        if (!psramFound()) {
            *arena = nullptr;
            return EF_ERR_NO_PSRAM;
        }
        *arena = heap_caps_aligned_alloc(16, n, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT);
    } else {
        *arena = heap_caps_aligned_alloc(16, n, MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT);
    }
    return *arena != nullptr ? 0 : EF_ERR_ARENA_ALLOC;
}

void ef_board_exit(int status) { (void)status; }

}  // extern "C"
