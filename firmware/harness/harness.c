/* Benchmark harness: warm-up + N timed inferences of ef_model_run() on a fixed input, reported over the
 * board's serial link with the EF1 protocol (ef_proto.h). Board-independent: timing, stack and heap come
 * from the board layer (ef_board.h), the model from model.h, the input from the generated input.h. */
#include "harness.h"

#include "ef_backend.h"
#include "ef_board.h"
#include "ef_proto.h"
#include "input.h"
#include "model.h"

#ifndef EF_WARMUP
#define EF_WARMUP 1
#endif
#ifndef EF_RUNS
#define EF_RUNS 5
#endif
#ifndef EF_HEX_MAX
#define EF_HEX_MAX 256 /* output bytes sent raw (hex); the CRC always covers all of them */
#endif

/* input.h (host-generated) must hold exactly the tensor model.h asks for */
typedef char ef_input_size_matches_model[(EF_INPUT_LEN == EF_INPUT_BYTES) ? 1 : -1];

static int8_t ef_output[EF_OUTPUT_BYTES];

static void report_error(const char *stage, int index, int code) {
    ef_rec_begin("ERR");
    ef_rec_str("stage", stage);
    ef_rec_i64("i", index);
    ef_rec_i64("code", code);
    ef_rec_end();
    ef_rec_begin("END");
    ef_rec_str("status", "error");
    ef_rec_end();
}

int ef_harness_run(void) {
    ef_board_stack_mark(); /* the MEM record's stack figure: what this benchmark uses below here */
    ef_rec_begin("BEGIN");
    ef_rec_u64("v", EF_PROTO_VERSION);
    ef_rec_str("board", ef_board_name());
    ef_rec_str("backend", ef_backend_name());
    ef_rec_str("model", EF_MODEL_ID);
    ef_rec_str("unit", ef_board_time_unit());
    ef_rec_u64("clock_hz", ef_board_clock_hz());
    ef_rec_u64("warmup", EF_WARMUP);
    ef_rec_u64("runs", EF_RUNS);
    ef_rec_u64("in", EF_INPUT_BYTES);
    ef_rec_u64("out", EF_OUTPUT_BYTES);
    ef_rec_u64("macs", (uint64_t)EF_MODEL_MACS);
    ef_rec_hex32("in_crc", ef_crc32(ef_input, EF_INPUT_BYTES));
    ef_rec_end();

    int rc = ef_backend_init();
    if (rc != 0) {
        report_error("init", -1, rc);
        return rc;
    }
    for (int w = 0; w < EF_WARMUP; w++) {
        rc = ef_model_run(ef_input, ef_output);
        if (rc != 0) {
            report_error("warmup", w, rc);
            return rc;
        }
    }
    for (int i = 0; i < EF_RUNS; i++) {
        uint64_t t0 = ef_board_now();
        EF_BARRIER();
        rc = ef_model_run(ef_input, ef_output);
        EF_BARRIER();
        uint64_t t1 = ef_board_now();
        if (rc != 0) {
            report_error("run", i, rc);
            return rc;
        }
        ef_rec_begin("RUN");
        ef_rec_u64("i", (uint64_t)i);
        ef_rec_u64("t", t1 - t0);
        ef_rec_hex32("crc", ef_crc32(ef_output, EF_OUTPUT_BYTES));
        ef_rec_end();
    }
    ef_rec_begin("MEM");
    ef_rec_u64("arena", ef_backend_arena_used());
    ef_rec_u64("stack", ef_board_stack_used());
    int32_t heap = ef_board_heap_free();
    if (heap >= 0) ef_rec_i64("heap_free", heap);
    ef_rec_end();

    ef_rec_begin("OUT");
    ef_rec_u64("n", EF_OUTPUT_BYTES);
    ef_rec_hex32("crc", ef_crc32(ef_output, EF_OUTPUT_BYTES));
    ef_rec_end();
    size_t shown = EF_OUTPUT_BYTES < EF_HEX_MAX ? EF_OUTPUT_BYTES : EF_HEX_MAX;
    for (size_t off = 0; off < shown; off += 32) {
        size_t n = shown - off < 32 ? shown - off : 32;
        ef_rec_begin("HEX");
        ef_rec_u64("off", off);
        ef_rec_bytes("data", (const uint8_t *)ef_output + off, n);
        ef_rec_end();
    }
    ef_rec_begin("END");
    ef_rec_str("status", "ok");
    ef_rec_u64("runs", EF_RUNS);
    ef_rec_end();
    return 0;
}
