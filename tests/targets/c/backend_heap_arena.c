/* A harness backend whose set-up takes its arena from the board, as the tflm backend does with EF_ARENA_IN_HEAP
 * (firmware/tflm/ef_tflm.cpp), for running a board port's allocation logic without the TFLM library. */
#include "ef_backend.h"
#include "ef_board.h"
#include "model.h"

static void *arena;

const char *ef_backend_name(void) { return "tflm"; }
int ef_backend_init(void) { return arena != 0 ? 0 : ef_board_alloc_arena(EF_ARENA_BYTES, &arena); }
size_t ef_backend_arena_used(void) { return (size_t)EF_ARENA_BYTES; }
