/* Stack high-water mark below a point, the same way on every board: ef_board_stack_mark() paints the free part of
 * the running stack below the caller's frame, ef_board_stack_used() reports how deep code has written into it since.
 * The harness marks at the benchmark's entry, so the EF1 "stack" figure is the stack the benchmark itself used (the
 * model, its kernels, the harness's callees, and any interrupt frame that landed on this stack meanwhile).
 *
 * The paint word's bytes are all 0xA5, FreeRTOS's own stack fill (tskSTACK_FILL_BYTE), so repainting a FreeRTOS task
 * stack keeps its overflow checks valid. Header-only so that every board port (C or C++) can use it. */
#ifndef EF_STACK_H
#define EF_STACK_H

#include <stddef.h>
#include <stdint.h>

#define EF_STACK_PAINT 0xA5A5A5A5u
/* Bytes left unpainted right below the marking function's stack pointer: its own register spill area (the Xtensa
 * windowed ABI saves a function's a0-a3 in the 16 bytes below its stack pointer). */
#define EF_STACK_MARGIN 32u

typedef struct {
    volatile uint32_t *lo; /* lowest painted word */
    volatile uint32_t *hi; /* one past the highest painted word */
    uintptr_t ref;         /* the stack pointer at the mark: the figure is measured from here */
} ef_stack_region;

/* Paint [lo, sp - EF_STACK_MARGIN) (rounded inwards to words), sp being the marking function's stack pointer. The
 * marking function must paint inline (no calls), so that nothing of its own lies in the painted range. */
static inline void ef_stack_paint(ef_stack_region *r, uintptr_t lo, uintptr_t sp) {
    r->ref = sp;
    r->lo = (volatile uint32_t *)((lo + 3u) & ~(uintptr_t)3u);
    r->hi = (volatile uint32_t *)((sp - EF_STACK_MARGIN) & ~(uintptr_t)3u);
    if (r->hi < r->lo) r->hi = r->lo;
    /* from the top down: an interrupt that lands meanwhile writes below the current position, which is painted next */
    for (volatile uint32_t *p = r->hi; p > r->lo;) *--p = EF_STACK_PAINT;
}

/* Bytes from the mark down to the deepest word written since (at most EF_STACK_MARGIN if none was); 0 before any
 * mark. When the whole painted range was overwritten, the figure is the range: the stack was exhausted. */
static inline uint32_t ef_stack_high_water(const ef_stack_region *r) {
    volatile uint32_t *p = r->lo;
    if (p == NULL) return 0;
    while (p < r->hi && *p == EF_STACK_PAINT) p++;
    return (uint32_t)(r->ref - (uintptr_t)p);
}

#endif
