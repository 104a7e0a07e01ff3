/* EF1 line builder: a fixed buffer, no printf (so the harness fits anywhere and costs no heap). */
#include "ef_proto.h"

#include "ef_board.h"

#define EF_LINE_MAX 240

static char line[EF_LINE_MAX + 16];
static size_t len;
static const char HEX[] = "0123456789abcdef";

uint32_t ef_crc32(const void *data, size_t n) {
    /* CRC-32 (IEEE, reflected, as zlib.crc32), bitwise: small, and only ever used outside timed regions */
    const uint8_t *p = (const uint8_t *)data;
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void put(char ch) {
    if (len < EF_LINE_MAX) line[len++] = ch;
}

static void puts_(const char *s) {
    while (*s) put(*s++);
}

void ef_rec_begin(const char *record) {
    len = 0;
    puts_("EF1 ");
    puts_(record);
}

static void key(const char *k) {
    put(' ');
    puts_(k);
    put('=');
}

void ef_rec_str(const char *k, const char *v) {
    key(k);
    puts_(v);
}

static void digits(uint64_t v) {
    char b[21];
    int i = 20;
    b[i] = 0;
    do {
        b[--i] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v);
    puts_(&b[i]);
}

void ef_rec_u64(const char *k, uint64_t v) {
    key(k);
    digits(v);
}

void ef_rec_i64(const char *k, int64_t v) {
    key(k);
    if (v < 0) {
        put('-');
        digits((uint64_t)(-(v + 1)) + 1u);
    } else {
        digits((uint64_t)v);
    }
}

void ef_rec_hex32(const char *k, uint32_t v) {
    key(k);
    for (int s = 28; s >= 0; s -= 4) put(HEX[(v >> s) & 0xFu]);
}

void ef_rec_bytes(const char *k, const void *p, size_t n) {
    const uint8_t *b = (const uint8_t *)p;
    key(k);
    for (size_t i = 0; i < n; i++) {
        put(HEX[b[i] >> 4]);
        put(HEX[b[i] & 0xFu]);
    }
}

void ef_rec_end(void) {
    uint32_t c = ef_crc32(line, len);
    /* the checksum always fits: put() stops at EF_LINE_MAX, the buffer has 16 spare bytes */
    line[len++] = ' ';
    line[len++] = '*';
    for (int s = 28; s >= 0; s -= 4) line[len++] = HEX[(c >> s) & 0xFu];
    line[len++] = '\n';
    ef_board_write(line, len);
    len = 0;
}
