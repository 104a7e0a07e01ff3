/* What the harness needs from a backend besides ef_model_run() (model.h): a name, set-up, arena use.
 * Backends: edgefold (firmware/harness/backend_edgefold.c, the micro runtime's static arena) and tflm
 * (firmware/tflm/ef_tflm.cpp, the TFLM interpreter). */
#ifndef EF_BACKEND_H
#define EF_BACKEND_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

const char *ef_backend_name(void);
int ef_backend_init(void);           /* 0 = ready */
size_t ef_backend_arena_used(void);  /* bytes of tensor arena actually used */

#ifdef __cplusplus
}
#endif
#endif
