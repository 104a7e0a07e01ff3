/* Board layer for the ESP-EYE (ESP32, dual Xtensa LX6 at 240 MHz, 8 MB PSRAM of which 4 MB mapped), Arduino core.
 *
 * Time: esp_timer_get_time() (microseconds, 64 bit). Stack: FreeRTOS's high-water mark of the loop task (the
 * task that runs setup()). Heap: free 8-bit-capable heap, internal + PSRAM. Arenas above EF_PSRAM_THRESHOLD
 * bytes go to PSRAM (heap_caps_malloc), smaller ones to internal RAM, which is faster. */
#include <Arduino.h>
#include <esp_heap_caps.h>
#include <esp_timer.h>
#include <freertos/FreeRTOS.h>
#include <freertos/task.h>

#include "ef_board.h"

#ifndef EF_PSRAM_THRESHOLD
#define EF_PSRAM_THRESHOLD (64 * 1024)
#endif
#ifndef CONFIG_ARDUINO_LOOP_STACK_SIZE
#define CONFIG_ARDUINO_LOOP_STACK_SIZE 8192
#endif

extern "C" {

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

uint32_t ef_board_stack_used(void) {
    // ESP-IDF's FreeRTOS reports the high-water mark in bytes
    UBaseType_t free_min = uxTaskGetStackHighWaterMark(NULL);
    return (uint32_t)CONFIG_ARDUINO_LOOP_STACK_SIZE - (uint32_t)free_min;
}

int32_t ef_board_heap_free(void) { return (int32_t)heap_caps_get_free_size(MALLOC_CAP_8BIT); }

void *ef_board_alloc_arena(size_t n) {
    void *p = NULL;
    if (n >= EF_PSRAM_THRESHOLD) p = heap_caps_aligned_alloc(16, n, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT);
    if (p == NULL) p = heap_caps_aligned_alloc(16, n, MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT);
    if (p == NULL) p = heap_caps_aligned_alloc(16, n, MALLOC_CAP_8BIT);
    return p;
}

void ef_board_exit(int status) { (void)status; }

}  // extern "C"
