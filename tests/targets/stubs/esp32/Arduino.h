/* Arduino-ESP32 2.x additions to the Arduino API, as cores/esp32/Arduino.h declares them (and the esp32-hal-*.h
 * headers it includes: esp32-hal-cpu.h, esp32-hal-psram.h). Declarations only. */
#pragma once
#include_next <Arduino.h>
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
extern "C" {
uint32_t getCpuFrequencyMhz(void); /* esp32-hal-cpu.h */
bool psramFound();                  /* esp32-hal-psram.h: true once PSRAM was detected, tested and added to the heap */
}
/* Arduino.h: the loop task's stack size; weak default CONFIG_ARDUINO_LOOP_STACK_SIZE, a sketch overrides it */
size_t getArduinoLoopTaskStackSize(void);
#define SET_LOOP_TASK_STACK_SIZE(sz) size_t getArduinoLoopTaskStackSize() { return sz;}
