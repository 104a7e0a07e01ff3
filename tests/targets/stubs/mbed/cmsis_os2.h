/* CMSIS-RTOS2 (cmsis/CMSIS_5/CMSIS/RTOS2/Include/cmsis_os2.h), the thread calls the Nano port uses. */
#pragma once
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
typedef void *osThreadId_t;
osThreadId_t osThreadGetId(void);
uint32_t osThreadGetStackSize(osThreadId_t thread_id);
#ifdef __cplusplus
}
#endif
