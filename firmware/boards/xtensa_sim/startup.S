/* Start-up of the Xtensa lx106 twin (QEMU -M sim -cpu lx106, call0 ABI): stack, exception vectors, then C.
 *
 * The lx106's reset vector is 0x50000000, the start of the twin's FLASH, where the linker puts this vector table:
 * its first slot jumps to _start, which runs with interrupts masked. Every exception vector jumps to one stub that
 * gives the C fault reporter (board.c) a stack of its own, so a fault is reported even after a stack overflow.
 * Vector offsets are the lx106 configuration's (XCHAL_*_VECOFS): level 2/debug 0x10, NMI 0x20, kernel 0x30,
 * user 0x50, double exception 0x70.
 */
    .section .ef_vectors, "ax"
    .global ef_vectors
ef_vectors:
    j ef_reset                  /* offset 0: the reset vector when VECBASE is the FLASH origin */
    .org 0x10
    movi a2, 2
    j ef_exception
    .org 0x20
    movi a2, 3
    j ef_exception
    .org 0x30
    movi a2, 1
    j ef_exception
    .org 0x50
    movi a2, 0
    j ef_exception
    .org 0x70
    movi a2, 4
    j ef_exception

    .align 4
.Lstart:
    .word _start
ef_reset:
    l32r a0, .Lstart
    jx a0

    .align 4
.Lfault_sp:
    .word ef_fault_stack + 1024
.Lfault_c:
    .word ef_board_fault
    .align 4
ef_exception:                   /* a2 = which vector; EXCCAUSE and the vector's EPC tell the rest */
    rsr.exccause a3
    rsr.epc1 a4
    bnei a2, 2, 1f
    rsr.epc2 a4
1:  bnei a2, 3, 2f
    rsr.epc3 a4
2:  bnei a2, 4, 3f
    rsr.depc a4
3:  l32r a1, .Lfault_sp
    l32r a0, .Lfault_c
    callx0 a0                   /* ef_board_fault(vector, cause, pc) does not return */
4:  j 4b

    .section .text.ef_start, "ax"
    .align 4
.Lstack_top:
    .word __stack_top
.Lvecbase:
    .word ef_vectors
.Lc_startup:
    .word ef_c_startup
    .global _start
    .type _start, @function
    .align 4
_start:
    l32r a1, .Lstack_top
    l32r a2, .Lvecbase
    wsr.vecbase a2
    movi a2, 0x2F               /* PS: INTLEVEL 15 (no interrupts), UM (user vector), EXCM cleared */
    wsr.ps a2
    rsync
    l32r a0, .Lc_startup
    callx0 a0                   /* .data/.bss, stack painting, main, exit: never returns */
3:  j 3b
    .size _start, . - _start

    .section .bss.ef_fault_stack, "aw", @nobits
    .align 16
ef_fault_stack:
    .space 1024
