/* Board layer for a POSIX host: runs the harness natively (tests, and checking that a generated project's C
 * sources compile and compute the same output with the host compiler). Time in microseconds (CLOCK_MONOTONIC). */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ef_board.h"

void ef_board_init(void) {}

void ef_board_write(const char *s, size_t n) {
    fwrite(s, 1, n, stdout);
    fflush(stdout);
}

uint64_t ef_board_now(void) {
    struct timespec ts;
    EF_BARRIER();
    clock_gettime(CLOCK_MONOTONIC, &ts);
    EF_BARRIER();
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

const char *ef_board_name(void) { return "host"; }
const char *ef_board_time_unit(void) { return "us"; }
uint32_t ef_board_clock_hz(void) { return 0; }
void ef_board_stack_mark(void) {}
uint32_t ef_board_stack_used(void) { return 0; }
int32_t ef_board_heap_free(void) { return -1; }
int ef_board_alloc_arena(size_t n, void **arena) {
    *arena = malloc(n);
    return *arena != NULL ? 0 : EF_ERR_ARENA_ALLOC;
}
void ef_board_exit(int status) { exit(status); }
