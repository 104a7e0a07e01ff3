/* Board layer used by the benchmark harness and the QEMU self-tests. One implementation per board in
 * firmware/boards/<board>/ (qemu_an386, xtensa_sim, nano33ble, esp32, host). Plain C so the harness builds with any
 * compiler.
 *
 * The memory figures of the EF1 MEM record mean the same on every board (docs/targets.md):
 *   stack      high-water mark below the benchmark's entry: ef_board_stack_mark() paints the free stack below the
 *              harness, ef_board_stack_used() reads how deep the benchmark wrote into it (ef_stack.h)
 *   heap_free  the largest block that can still be allocated from internal RAM (not the sum of free bytes, no PSRAM)
 *   arena      bytes of tensor arena the backend uses (ef_backend_arena_used(); not a board figure) */
#ifndef EF_BOARD_H
#define EF_BOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Codes of the ERR record when set-up fails (stage=init); the host names them (targets/protocol.py ERROR_CODES).
 * A failing ef_model_run() reports its own return value. */
#define EF_ERR_TFLM_OPS (-20)      /* the op resolver could not register the model's ops */
#define EF_ERR_TFLM_SCHEMA (-21)   /* the .tflite schema version differs from the interpreter's */
#define EF_ERR_ARENA_ALLOC (-22)   /* no block of the arena's size could be allocated */
#define EF_ERR_TFLM_ALLOCATE (-23) /* AllocateTensors() failed: the arena is too small for this model */
#define EF_ERR_TFLM_TENSORS (-24)  /* the interpreter has no input or output tensor */
#define EF_ERR_TFLM_SIZES (-25)    /* the interpreter's input/output sizes differ from model.h */
#define EF_ERR_NO_PSRAM (-26)      /* the arena needs PSRAM and the board has none (psramFound() is false) */

void ef_board_init(void);
/* Blocking write of n bytes to the serial link (UART / USB CDC). */
void ef_board_write(const char *s, size_t n);
/* Monotonic counter in ef_board_time_unit() units ("instructions" on the QEMU twin, "us" on boards). */
uint64_t ef_board_now(void);
const char *ef_board_name(void);
const char *ef_board_time_unit(void);
/* Core clock in Hz (nominal, of the real board the firmware stands for). */
uint32_t ef_board_clock_hz(void);
/* Paint the free stack below the caller's frame (the harness calls this at the benchmark's entry). */
void ef_board_stack_mark(void);
/* Stack high-water mark in bytes below the last ef_board_stack_mark(); 0 when unknown. */
uint32_t ef_board_stack_used(void);
/* Largest allocatable block of internal RAM in bytes; negative when the board has no heap. */
int32_t ef_board_heap_free(void);
/* Memory for a large arena (TFLM): PSRAM on the ESP32, the heap elsewhere. 0 and *arena set, or an EF_ERR_* code
 * (above) that says why not. */
int ef_board_alloc_arena(size_t n, void **arena);
/* End the program: the QEMU twin leaves the emulator (SYSRESETREQ + -no-reboot); boards idle. */
void ef_board_exit(int status);

/* Compiler barrier: keeps the timed call between the two timer reads. */
#define EF_BARRIER() __asm__ __volatile__("" ::: "memory")

#ifdef __cplusplus
}
#endif
#endif
