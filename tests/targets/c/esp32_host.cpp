/* The Arduino-ESP32 / ESP-IDF calls of firmware/boards/esp32/board.cpp, implemented on the host so that the port's
 * own logic (PSRAM check, arena placement, heap figure) runs here, through the harness and the host's EF1 parser.
 * Environment: EF_TEST_PSRAM=0|1 is what psramFound() says. Heap figures are distinct per capability set, so the
 * test sees which one the port asked for. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "Arduino.h"
#include "esp_heap_caps.h"
#include "esp_timer.h"

EfStubSerial Serial;
void EfStubSerial::begin(unsigned long) {}
EfStubSerial::operator bool() const { return true; }
size_t EfStubSerial::write(const uint8_t *buf, size_t n) {
    fwrite(buf, 1, n, stdout);
    fflush(stdout);
    return n;
}
int EfStubSerial::available() { return 0; }
int EfStubSerial::read() { return -1; }
unsigned long millis(void) { return 0; }
void delay(unsigned long) {}

static bool psram(void) {
    const char *v = getenv("EF_TEST_PSRAM");
    return v != nullptr && v[0] == '1';
}

extern "C" {
uint32_t getCpuFrequencyMhz(void) { return 240; }
bool psramFound() { return psram(); }
int64_t esp_timer_get_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
void *heap_caps_aligned_alloc(size_t alignment, size_t size, uint32_t caps) {
    if ((caps & MALLOC_CAP_SPIRAM) && !psram()) return nullptr;
    return aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
}
size_t heap_caps_get_free_size(uint32_t caps) { return (caps & MALLOC_CAP_INTERNAL) ? 200000 : 4300000; }
size_t heap_caps_get_largest_free_block(uint32_t caps) {
    if (caps & MALLOC_CAP_SPIRAM) return 4100000;
    return (caps & MALLOC_CAP_INTERNAL) ? 110592 : 4100000;
}
/* no FreeRTOS task here: nothing is proven free, so the port paints nothing */
UBaseType_t uxTaskGetStackHighWaterMark(TaskHandle_t) { return 0; }
uint8_t *pxTaskGetStackStart(TaskHandle_t) { return nullptr; }
}
size_t getArduinoLoopTaskStackSize(void) { return 8192; }

void setup();
int main() {
    setup();
    return 0;
}
