/* Keil RTX5 (cmsis/CMSIS_5/CMSIS/RTOS2/RTX/Include/rtx_os.h): the thread control block, fields in their real order;
 * an osThreadId_t points to one. */
#pragma once
#include <stdint.h>
#include "cmsis_os2.h"
#define osRtxStackMagicWord 0xE25A2EA5U
typedef struct osRtxThread_s {
    uint8_t id;
    uint8_t state;
    uint8_t flags;
    uint8_t attr;
    const char *name;
    struct osRtxThread_s *thread_next;
    struct osRtxThread_s *thread_prev;
    struct osRtxThread_s *delay_next;
    struct osRtxThread_s *delay_prev;
    struct osRtxThread_s *thread_join;
    uint32_t delay;
    int8_t priority;
    int8_t priority_base;
    uint8_t stack_frame;
    uint8_t flags_options;
    uint32_t wait_flags;
    uint32_t thread_flags;
    struct osRtxMutex_s *mutex_list;
    void *stack_mem;     /* the thread's stack memory (lowest address; RTX's magic word is its first word) */
    uint32_t stack_size; /* its size in bytes */
    uint32_t sp;
    uint32_t thread_addr;
    uint32_t tz_memory;
} osRtxThread_t;
