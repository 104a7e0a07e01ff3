/* Benchmark harness: warm-up + N timed inferences of ef_model_run() on a fixed input, reported over the
 * board's serial link with the EF1 protocol (ef_proto.h). Board-independent: timing, stack and heap come
 * from the board layer (ef_board.h), the model from model.h, the input from the generated input.h.
 * With EF_PROFILE (--profile) one more inference follows the timed runs with a timer stamp after every kernel
 * call (ef_profile.h), reported as PROF + one STEP record per kernel call. */
#include "harness.h"

#include "ef_backend.h"
#include "ef_board.h"
#include "ef_proto.h"
#include "input.h"
#include "model.h"
#ifdef EF_PROFILE
#include "ef_profile.h"
#endif

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

#ifdef EF_PROFILE
#ifndef EF_MODEL_STEPS
#error "EF_PROFILE needs EF_MODEL_STEPS from model.h: the per-step profile times the edgefold backend's kernel calls"
#endif
#define EF_PROF_CAL 16 /* calibration stamps: the host subtracts their mean cost from every step */
#define EF_PROF_SLOTS (EF_MODEL_STEPS > EF_PROF_CAL ? EF_MODEL_STEPS : EF_PROF_CAL + 1)
#define EF_PROF_UNSET UINT64_MAX

static uint64_t ef_prof_t[EF_PROF_SLOTS];
static unsigned ef_prof_n;     /* slots the current stamping uses */
static uint32_t ef_prof_dropped;
static int ef_prof_on;

#if defined(__GNUC__) && !defined(__clang__)
/* the calibration below must call the very code model.c calls: no inlined or specialised copy */
#define EF_PROF_OUTLINE __attribute__((noinline, noclone))
#elif defined(__GNUC__)
#define EF_PROF_OUTLINE __attribute__((noinline))
#else
#define EF_PROF_OUTLINE
#endif

EF_PROF_OUTLINE void ef_profile_step(int step) {
    if (!ef_prof_on) return;
    uint64_t t = ef_board_now();
    if ((unsigned)step < ef_prof_n) {
        ef_prof_t[step] = t;
    } else {
        ef_prof_dropped++;
    }
}

/* Timer units of EF_PROF_CAL back-to-back stamps: every step's interval holds one stamp besides its kernel call. */
static uint64_t ef_profile_calibrate(void) {
    ef_prof_n = EF_PROF_CAL + 1;
    ef_prof_on = 1;
    /* written out, not a loop: the stamps in model.c have no loop counter between them either */
    ef_profile_step(0);
    ef_profile_step(1);
    ef_profile_step(2);
    ef_profile_step(3);
    ef_profile_step(4);
    ef_profile_step(5);
    ef_profile_step(6);
    ef_profile_step(7);
    ef_profile_step(8);
    ef_profile_step(9);
    ef_profile_step(10);
    ef_profile_step(11);
    ef_profile_step(12);
    ef_profile_step(13);
    ef_profile_step(14);
    ef_profile_step(15);
    ef_profile_step(16);
    ef_prof_on = 0;
    return ef_prof_t[EF_PROF_CAL] - ef_prof_t[0];
}
#endif

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

#ifdef EF_PROFILE
/* One inference with a stamp after every kernel call: PROF, then STEP i= t=<timer units since the previous stamp>
 * (step 0: since just before ef_model_run). A step never stamped, or a stamp beyond EF_MODEL_STEPS, is `dropped`. */
static int ef_profile_run(void) {
    uint64_t cal = ef_profile_calibrate();
    for (unsigned k = 0; k < EF_PROF_SLOTS; k++) ef_prof_t[k] = EF_PROF_UNSET;
    ef_prof_dropped = 0;
    ef_prof_n = EF_MODEL_STEPS;
    ef_prof_on = 1;
    uint64_t t0 = ef_board_now();
    EF_BARRIER();
    int rc = ef_model_run(ef_input, ef_output);
    EF_BARRIER();
    uint64_t t1 = ef_board_now();
    ef_prof_on = 0;
    if (rc != 0) {
        report_error("profile", 0, rc);
        return rc;
    }
    uint32_t dropped = ef_prof_dropped;
    for (unsigned k = 0; k < EF_MODEL_STEPS; k++) dropped += ef_prof_t[k] == EF_PROF_UNSET;
    ef_rec_begin("PROF");
    ef_rec_u64("steps", EF_MODEL_STEPS);
    ef_rec_u64("dropped", dropped);
    ef_rec_u64("total", t1 - t0);
    ef_rec_u64("stamps", EF_PROF_CAL);
    ef_rec_u64("stamps_t", cal);
    ef_rec_hex32("crc", ef_crc32(ef_output, EF_OUTPUT_BYTES));
    ef_rec_end();
    uint64_t prev = t0;
    for (unsigned k = 0; k < EF_MODEL_STEPS; k++) {
        if (ef_prof_t[k] == EF_PROF_UNSET) continue;
        ef_rec_begin("STEP");
        ef_rec_u64("i", k);
        ef_rec_u64("t", ef_prof_t[k] - prev);
        ef_rec_end();
        prev = ef_prof_t[k];
    }
    return 0;
}
#endif

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
#ifdef EF_PROFILE
    rc = ef_profile_run();
    if (rc != 0) return rc;
#endif
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
