/* Entry point for bare-metal boards (the QEMU twin): one benchmark, then leave. Arduino boards use their
 * sketch (firmware/boards/<board>/main.cpp) instead. */
#include "ef_board.h"
#include "harness.h"

int main(void) {
    ef_board_init();
    int rc = ef_harness_run();
    ef_board_exit(rc);
    return rc;
}
