/* The edgefold micro runtime as a harness backend: ef_model_run() comes from the generated model.c; the
 * arena is laid out ahead of time by codegen, so "used" is exactly its planned size. */
#include "ef_backend.h"
#include "model.h"

const char *ef_backend_name(void) { return "edgefold"; }
int ef_backend_init(void) { return 0; }
size_t ef_backend_arena_used(void) { return (size_t)EF_ARENA_BYTES; }
