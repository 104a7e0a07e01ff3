/* Hand-written stand-in for the codegen's model.h (same contract; model.json next to it states the same
 * figures): a checksum-like "model" whose output the test recomputes in Python. */
#ifndef EF_MODEL_H
#define EF_MODEL_H
#include <stdint.h>
#ifndef EF_TEST_IN
#define EF_TEST_IN 96
#endif
#define EF_INPUT_BYTES EF_TEST_IN
#define EF_OUTPUT_BYTES 10
#define EF_ARENA_BYTES 512
#define EF_MODEL_MACS (EF_INPUT_BYTES * EF_OUTPUT_BYTES)
#define EF_MODEL_ID "0123456789abcdef"
#ifdef __cplusplus
extern "C" {
#endif
int ef_model_run(const int8_t *input, int8_t *output);
#ifdef __cplusplus
}
#endif
#endif
