/* ESP-IDF 4.4 components/freertos/include/freertos/task.h (declarations the ESP32 port uses). */
#pragma once
#include "FreeRTOS.h"
extern "C" {
/* the least free stack the task has had since it started, in bytes on ESP-IDF; NULL = the calling task */
UBaseType_t uxTaskGetStackHighWaterMark(TaskHandle_t xTask);
#if INCLUDE_pxTaskGetStackStart
/* the start of the task's stack memory: its lowest address (pxStack); NULL = the calling task */
uint8_t *pxTaskGetStackStart(TaskHandle_t xTask);
#endif
}
