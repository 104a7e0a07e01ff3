#ifndef EF_HARNESS_H
#define EF_HARNESS_H
#ifdef __cplusplus
extern "C" {
#endif
/* One complete benchmark (BEGIN ... END on the serial link); returns 0 or the failing ef_model_run code. */
int ef_harness_run(void);
#ifdef __cplusplus
}
#endif
#endif
