/* Start-up for the QEMU mps2-an386 twin (Cortex-M4F), nRF52840 memory map.
 *
 * 0x0:      boot stub = stand-in for the Nano 33 BLE bootloader: points VTOR at the application's
 *           vector table (0x10000) and jumps to its reset handler, as the real bootloader does.
 * 0x10000:  application. Reset_Handler enables the FPU (CP10/CP11) *before* any C code runs, because
 *           GCC may emit VFP instructions anywhere with -mfloat-abi=hard and they fault while the FPU is off.
 */
    .syntax unified
    .cpu cortex-m4
    .fpu fpv4-sp-d16
    .thumb

    .section .boot_vectors, "a", %progbits
    .word _estack
    .word ef_boot_reset

    .section .boot_text, "ax", %progbits
    .thumb_func
    .type ef_boot_reset, %function
ef_boot_reset:
    ldr r0, =__app_vectors
    ldr r1, =0xE000ED08          /* SCB->VTOR */
    str r0, [r1]
    dsb
    isb
    ldr r2, [r0]                 /* application's initial stack pointer */
    msr msp, r2
    ldr r1, [r0, #4]             /* application's reset handler */
    bx r1
    .ltorg

    .section .text.Reset_Handler, "ax", %progbits
    .global Reset_Handler
    .thumb_func
    .type Reset_Handler, %function
Reset_Handler:
    ldr r0, =0xE000ED88          /* SCB->CPACR */
    ldr r1, [r0]
    orr r1, r1, #(0xF << 20)     /* CP10, CP11: full access */
    str r1, [r0]
    dsb
    isb
    bl ef_c_startup              /* .data/.bss, stack painting, constructors, main, exit */
1:  b 1b
    .ltorg
