/* Per-kernel-call profile (`edgefold deploy/bench/build --profile`): with EF_PROFILE defined, the generated model.c
 * calls EF_TRACE_STEP(i, ...) after kernel call i, which records the board's timer (ef_board_now(): instructions on
 * the QEMU twins, us on boards) for step i while the harness's profile run has stamping on; the harness then reports
 * the intervals as EF1 PROF / STEP records (harness.c, targets/protocol.py). Without EF_PROFILE this header defines
 * nothing, so model.c keeps its own no-op EF_TRACE_STEP (or a host debug hook). */
#ifndef EF_PROFILE_H
#define EF_PROFILE_H

#ifdef EF_PROFILE
#ifdef __cplusplus
extern "C" {
#endif

/* Stamp the end of step `step` (0 .. EF_MODEL_STEPS-1); does nothing unless the profile run is on, so the timed
 * runs of a profile build pay only the call and one test per kernel call. Defined in harness.c. */
void ef_profile_step(int step);

#ifdef __cplusplus
}
#endif

/* model.c's hook: (step, output pointer, output bytes); the profile only needs the step. */
#undef EF_TRACE_STEP
#define EF_TRACE_STEP(step, ptr, nbytes) ef_profile_step(step)
#endif /* EF_PROFILE */

#endif
