/* newlib hooks for the QEMU twin (compiled only when linking newlib-nano): enough for memcpy/memset/
 * snprintf, printf goes to the UART, no heap (the micro runtime plans a static arena). */
#include <errno.h>
#include <stddef.h>
#include <sys/stat.h>

#include "ef_board.h"

/* ---- newlib hooks: enough for memcpy/memset/snprintf; printf goes to the UART; no heap ---- */
void *_sbrk(ptrdiff_t incr) {
    (void)incr;
    errno = ENOMEM;
    return (void *)-1;
}
int _write(int fd, const char *buf, int len) {
    (void)fd;
    ef_board_write(buf, (size_t)len);
    return len;
}
int _read(int fd, char *buf, int len) {
    (void)fd; (void)buf; (void)len;
    return 0;
}
int _close(int fd) { (void)fd; return -1; }
int _fstat(int fd, struct stat *st) { (void)fd; st->st_mode = S_IFCHR; return 0; }
int _isatty(int fd) { (void)fd; return 1; }
int _lseek(int fd, int off, int whence) { (void)fd; (void)off; (void)whence; return 0; }
int _kill(int pid, int sig) { (void)pid; (void)sig; return -1; }
int _getpid(void) { return 1; }
void _exit(int status) { ef_board_exit(status); }
