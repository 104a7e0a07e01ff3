/* EF1: the on-device benchmark protocol (one record per line, see targets/protocol.py for the host side).
 *
 *   EF1 <RECORD> key=value key=value ... *<crc32 of everything before " *", 8 lower-case hex>
 *
 * Records, in order: BEGIN, RUN (one per timed run), [PROF, STEP (one per kernel call): EF_PROFILE builds only],
 * MEM, OUT, HEX (output bytes, 32 per line), END; ERR when something fails on the device. Values never contain spaces. Lines that do not start with "EF1 "
 * are noise to the host (boot messages, debug prints). */
#ifndef EF_PROTO_H
#define EF_PROTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EF_PROTO_VERSION 1

uint32_t ef_crc32(const void *data, size_t n);

void ef_rec_begin(const char *record);           /* starts "EF1 <record>" */
void ef_rec_str(const char *key, const char *v); /* " key=v" (v must not contain spaces) */
void ef_rec_u64(const char *key, uint64_t v);
void ef_rec_i64(const char *key, int64_t v);
void ef_rec_hex32(const char *key, uint32_t v);  /* 8 hex digits */
void ef_rec_bytes(const char *key, const void *p, size_t n); /* hex string, n <= 64 */
void ef_rec_end(void);                           /* " *crc\n", then written to the board's serial link */

#ifdef __cplusplus
}
#endif
#endif
