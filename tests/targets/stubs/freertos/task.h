#pragma once
#include "FreeRTOS.h"
extern "C" UBaseType_t uxTaskGetStackHighWaterMark(TaskHandle_t task);
