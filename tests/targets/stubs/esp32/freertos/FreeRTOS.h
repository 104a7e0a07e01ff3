/* ESP-IDF 4.4 FreeRTOS, as far as the ESP32 port uses it. Stacks are counted in bytes (StackType_t is uint8_t).
 * FreeRTOSConfig.h enables pxTaskGetStackStart(); -DINCLUDE_pxTaskGetStackStart=0 checks the port without it. */
#pragma once
#include <stdint.h>
typedef uint8_t StackType_t;
typedef unsigned int UBaseType_t;
typedef struct tskTaskControlBlock *TaskHandle_t;
#ifndef INCLUDE_pxTaskGetStackStart
#define INCLUDE_pxTaskGetStackStart 1
#endif
