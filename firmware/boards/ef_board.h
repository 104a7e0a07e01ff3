/* Board layer used by the benchmark harness and the QEMU self-tests. One implementation per board in
 * firmware/boards/<board>/ (qemu_an386, nano33ble, esp32). Plain C so the harness builds with any compiler. */
#ifndef EF_BOARD_H
#define EF_BOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void ef_board_init(void);
/* Blocking write of n bytes to the serial link (UART / USB CDC). */
void ef_board_write(const char *s, size_t n);
/* Monotonic counter in ef_board_time_unit() units ("instructions" on the QEMU twin, "us" on boards). */
uint64_t ef_board_now(void);
const char *ef_board_name(void);
const char *ef_board_time_unit(void);
/* Core clock in Hz (nominal, of the real board the firmware stands for). */
uint32_t ef_board_clock_hz(void);
/* Stack high-water mark in bytes (stack painting); 0 when unknown. */
uint32_t ef_board_stack_used(void);
/* Free heap in bytes; negative when the board has no heap. */
int32_t ef_board_heap_free(void);
/* Memory for a large arena (TFLM): PSRAM on the ESP32, the heap elsewhere. NULL on failure. */
void *ef_board_alloc_arena(size_t n);
/* End the program: the QEMU twin leaves the emulator (SYSRESETREQ + -no-reboot); boards idle. */
void ef_board_exit(int status);

/* Compiler barrier: keeps the timed call between the two timer reads. */
#define EF_BARRIER() __asm__ __volatile__("" ::: "memory")

#ifdef __cplusplus
}
#endif
#endif
