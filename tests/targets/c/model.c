#include "model.h"

static int32_t arena[EF_ARENA_BYTES / 4];

int ef_model_run(const int8_t *input, int8_t *output) {
    for (int j = 0; j < EF_OUTPUT_BYTES; j++) {
        int32_t acc = 0;
        for (int i = 0; i < EF_INPUT_BYTES; i++) acc += input[i] * (((i * 31 + j * 17) % 255) - 127);
        arena[j] = acc;
    }
    for (int j = 0; j < EF_OUTPUT_BYTES; j++) output[j] = (int8_t)(arena[j] >> 6);
    return 0;
}
