/* The "tflm" backend: ef_model_run() on the TensorFlow Lite Micro interpreter.
 *
 * Built only inside generated PlatformIO projects (the TFLM library comes from the PlatformIO library
 * spaziochirale/Chirale_TensorFLowLite). Generated next to it: model.h (sizes, arena, id),
 * ef_tflm_ops.h (a MicroMutableOpResolver registering exactly the model's ops) and model_int8_tflite.h/.c
 * (the flatbuffer as a 16-byte aligned array). The arena is a static array unless the board asks for it
 * from ef_board_alloc_arena() (EF_ARENA_IN_HEAP: PSRAM on the ESP32). */
#include <Chirale_TensorFlowLite.h> /* the library's main header: PlatformIO's dependency finder keys on it */
#include <string.h>

#include <new>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#include "ef_backend.h"
#include "ef_board.h"
#include "model.h"
#include "model_int8_tflite.h"
#include "ef_tflm_ops.h"

namespace {
tflite::MicroInterpreter *g_interp = nullptr;
TfLiteTensor *g_in = nullptr;
TfLiteTensor *g_out = nullptr;
#ifndef EF_ARENA_IN_HEAP
alignas(16) uint8_t g_arena[EF_ARENA_BYTES];
#endif
alignas(tflite::MicroInterpreter) uint8_t g_interp_mem[sizeof(tflite::MicroInterpreter)];
}  // namespace

extern "C" const char *ef_backend_name(void) { return "tflm"; }

extern "C" int ef_backend_init(void) {
    if (g_interp != nullptr) return 0;
    static tflite::MicroMutableOpResolver<EF_TFLM_NUM_OPS> resolver;
    if (ef_tflm_register(resolver) != 0) return EF_ERR_TFLM_OPS;
    const tflite::Model *model = tflite::GetModel(ef_model_tflite);
    if (model->version() != TFLITE_SCHEMA_VERSION) return EF_ERR_TFLM_SCHEMA;
#ifdef EF_ARENA_IN_HEAP
    void *mem = nullptr;
    int rc = ef_board_alloc_arena(EF_ARENA_BYTES, &mem);
    if (rc != 0) return rc;  // e.g. EF_ERR_NO_PSRAM: the host names the reason
    uint8_t *arena = (uint8_t *)mem;
#else
    uint8_t *arena = g_arena;
#endif
    // placement new: no heap, no static-initialisation guard
    g_interp = new (g_interp_mem) tflite::MicroInterpreter(model, resolver, arena, EF_ARENA_BYTES);
    if (g_interp->AllocateTensors() != kTfLiteOk) return EF_ERR_TFLM_ALLOCATE;  // arena too small
    g_in = g_interp->input(0);
    g_out = g_interp->output(0);
    if (g_in == nullptr || g_out == nullptr) return EF_ERR_TFLM_TENSORS;
    if (g_in->bytes != (size_t)EF_INPUT_BYTES || g_out->bytes != (size_t)EF_OUTPUT_BYTES) return EF_ERR_TFLM_SIZES;
    return 0;
}

extern "C" size_t ef_backend_arena_used(void) { return g_interp ? g_interp->arena_used_bytes() : 0; }

extern "C" int ef_model_run(const int8_t *input, int8_t *output) {
    if (g_interp == nullptr) return -1;
    memcpy(g_in->data.int8, input, EF_INPUT_BYTES);
    if (g_interp->Invoke() != kTfLiteOk) return -2;
    memcpy(output, g_out->data.int8, EF_OUTPUT_BYTES);
    return 0;
}
