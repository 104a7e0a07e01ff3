/* Board layer for the QEMU mps2-an386 twin of the Nano 33 BLE: CMSDK UART0 for output, SysTick for
 * deterministic instruction counting under `-icount shift=0`, stack painting, exit via SYSRESETREQ.
 *
 * Counting: with -icount shift=0 each guest instruction advances virtual time by 1 ns. SysTick runs from
 * the 25 MHz system clock of the MPS2 board, i.e. one tick per 40 ns = 40 instructions. A 24-bit down
 * counter with an overflow interrupt gives a 64-bit count; resolution is 40 instructions (about 0.6 us
 * of a 64 MHz Cortex-M4), negligible for a model inference of millions of instructions.
 */
#include <stdint.h>
#include <stddef.h>

#include "ef_board.h"
#include "ef_stack.h"

#define REG32(a) (*(volatile uint32_t *)(a))

/* CMSDK APB UART0 */
#define UART0_BASE 0x40004000u
#define UART_DATA REG32(UART0_BASE + 0x00)
#define UART_STATE REG32(UART0_BASE + 0x04)
#define UART_CTRL REG32(UART0_BASE + 0x08)
#define UART_BAUDDIV REG32(UART0_BASE + 0x10)
#define UART_STATE_TXFULL 0x1u

/* System control */
#define SYST_CSR REG32(0xE000E010)
#define SYST_RVR REG32(0xE000E014)
#define SYST_CVR REG32(0xE000E018)
#define SCB_AIRCR REG32(0xE000ED0C)
#define SCB_SHCSR REG32(0xE000ED24)

#define SYSTICK_HZ 25000000u         /* MPS2 system clock */
#define INSNS_PER_TICK 40u           /* 1e9 ns/s / 25 MHz, with -icount shift=0 (1 insn = 1 ns) */

extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end;
extern uint32_t __stack_limit, __stack_top;
extern void (*__preinit_array_start[])(void), (*__preinit_array_end[])(void);
extern void (*__init_array_start[])(void), (*__init_array_end[])(void);
extern int main(void);
void Reset_Handler(void);

static volatile uint32_t systick_wraps;
static ef_stack_region stack_region;

/* ---- UART ---- */
static void uart_putc(char c) {
    while (UART_STATE & UART_STATE_TXFULL) {
    }
    UART_DATA = (uint32_t)(unsigned char)c;
}

void ef_board_write(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) uart_putc(s[i]);
}

/* ---- time ---- */
void SysTick_Handler(void) { systick_wraps++; }

uint64_t ef_board_now(void) {
    uint32_t hi, lo, hi2;
    EF_BARRIER();
    do {
        hi = systick_wraps;
        lo = SYST_CVR;
        hi2 = systick_wraps;
    } while (hi != hi2);
    EF_BARRIER();
    uint64_t ticks = ((uint64_t)hi << 24) + (uint64_t)(0xFFFFFFu - lo);
    return ticks * INSNS_PER_TICK;
}

const char *ef_board_name(void) { return "qemu_an386"; }
const char *ef_board_time_unit(void) { return "instructions"; }
uint32_t ef_board_clock_hz(void) { return 64000000u; } /* the nRF52840 this twin stands for */

/* ---- memory ---- */
__attribute__((noinline)) void ef_board_stack_mark(void) {
    uintptr_t sp;
    __asm__ __volatile__("mov %0, sp" : "=r"(sp));
    ef_stack_paint(&stack_region, (uintptr_t)&__stack_limit, sp);
}

uint32_t ef_board_stack_used(void) { return ef_stack_high_water(&stack_region); }

int32_t ef_board_heap_free(void) { return -1; } /* no heap on the twin: the runtime plans a static arena */

int ef_board_alloc_arena(size_t n, void **arena) {
    (void)n;
    *arena = NULL;
    return EF_ERR_ARENA_ALLOC;
}

void ef_board_init(void) {
    UART_BAUDDIV = 16;
    UART_CTRL = 0x1; /* TX enable */
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 0x7; /* processor clock, interrupt on wrap, enable */
}

void ef_board_exit(int status) {
    (void)status; /* the protocol's END record carries the status; QEMU's exit code is 0 either way */
    __asm__ __volatile__("dsb" ::: "memory");
    SCB_AIRCR = 0x05FA0004u; /* VECTKEY | SYSRESETREQ; QEMU quits with -no-reboot */
    __asm__ __volatile__("dsb" ::: "memory");
    for (;;) {
    }
}

/* ---- start-up (called from Reset_Handler once the FPU is on) ---- */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void ef_c_startup(void) {
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end) *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end; dst++) *dst = 0;
    /* Paint the stack region (everything above .bss) up to a little below the live stack pointer: without a later
     * ef_board_stack_mark() the figure covers the whole program. */
    uintptr_t sp;
    __asm__ __volatile__("mov %0, sp" : "=r"(sp));
    ef_stack_paint(&stack_region, (uintptr_t)&__stack_limit, sp);
    stack_region.ref = (uintptr_t)&__stack_top;
    SCB_SHCSR |= (7u << 16); /* separate MemManage/BusFault/UsageFault handlers */
    for (void (**f)(void) = __preinit_array_start; f < __preinit_array_end; f++) (*f)();
    for (void (**f)(void) = __init_array_start; f < __init_array_end; f++) (*f)();
    int rc = main();
    ef_board_exit(rc);
}

/* ---- faults: say so on the serial link (the host parser turns ERR into a DeviceError), then leave ---- */
static void fault(const char *name) {
    static const char head[] = "\nEF1 FAULT type=";
    ef_board_write(head, sizeof head - 1);
    const char *p = name;
    while (*p) p++;
    ef_board_write(name, (size_t)(p - name));
    ef_board_write("\n", 1);
    ef_board_exit(99);
}
__attribute__((weak)) void HardFault_Handler(void) { fault("hardfault"); }
__attribute__((weak)) void MemManage_Handler(void) { fault("memmanage"); }
__attribute__((weak)) void BusFault_Handler(void) { fault("busfault"); }
__attribute__((weak)) void UsageFault_Handler(void) { fault("usagefault"); }
void Default_Handler(void) { fault("unexpected-irq"); }
void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));

__attribute__((section(".isr_vector"), used)) void (*const ef_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&__stack_top,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, 0, 0, 0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
};

