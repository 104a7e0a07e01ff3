/* ArduinoCore-mbed 4.x: mbed.h brings CMSIS-RTOS2 (cmsis_os2.h). Declarations only. */
#pragma once
#include "cmsis_os2.h"
