"""Writes a C program that checks firmware/boards/xtensa_sim/lx106_libgcc.c on the twin: operands and expected
results (computed here with Python integers) are baked in; the program prints how many results differ."""

from __future__ import annotations

import random

M32, M64 = (1 << 32) - 1, (1 << 64) - 1


def _s(x: int, bits: int) -> int:
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def cases(n: int = 400, seed: int = 1) -> dict[str, list[tuple[int, int, int]]]:
    rnd = random.Random(seed)
    edge32 = [0, 1, 2, 3, 7, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x12345678, 0xFFFF0000]

    def r32() -> int:
        return rnd.choice(edge32) if rnd.random() < 0.25 else rnd.getrandbits(rnd.choice((8, 16, 31, 32)))

    def r64() -> int:
        return rnd.getrandbits(rnd.choice((16, 33, 48, 63, 64))) if rnd.random() > 0.2 else rnd.choice(
            [0, 1, M64, 1 << 63, (1 << 63) - 1, 0xFFFFFFFF, 1 << 32])

    out: dict[str, list[tuple[int, int, int]]] = {k: [] for k in (
        "umulsidi3", "muldi3", "udivsi3", "umodsi3", "divsi3", "udivdi3", "umoddi3", "divdi3")}
    for _ in range(n):
        a, b = r32(), r32()
        out["umulsidi3"].append((a, b, a * b))
        x, y = r64(), r64()
        out["muldi3"].append((x, y, (_s(x, 64) * _s(y, 64)) & M64))
        b = b or 3
        out["udivsi3"].append((a, b, a // b))
        out["umodsi3"].append((a, b, a % b))
        sa, sb = _s(a, 32), _s(b, 32)
        if not (sa == -(1 << 31) and sb == -1):  # overflows in C
            out["divsi3"].append((a, b, _trunc_div(sa, sb) & M32))
        y = y or 7
        out["udivdi3"].append((x, y, x // y))
        out["umoddi3"].append((x, y, x % y))
        sx, sy = _s(x, 64), _s(y, 64)
        if not (sx == -(1 << 63) and sy == -1):
            out["divdi3"].append((x, y, _trunc_div(sx, sy) & M64))
    return out


def program(n: int = 400, seed: int = 1) -> str:
    """C source: each helper runs on volatile operands (no constant folding) and is compared with its result."""
    c = cases(n, seed)
    decl = {"umulsidi3": ("uint32_t", "uint64_t", "(uint64_t)a[i] * b[i]"),
            "muldi3": ("uint64_t", "uint64_t", "(uint64_t)((int64_t)a[i] * (int64_t)b[i])"),
            "udivsi3": ("uint32_t", "uint32_t", "a[i] / b[i]"),
            "umodsi3": ("uint32_t", "uint32_t", "a[i] % b[i]"),
            "divsi3": ("uint32_t", "uint32_t", "(uint32_t)((int32_t)a[i] / (int32_t)b[i])"),
            "udivdi3": ("uint64_t", "uint64_t", "a[i] / b[i]"),
            "umoddi3": ("uint64_t", "uint64_t", "a[i] % b[i]"),
            "divdi3": ("uint64_t", "uint64_t", "(uint64_t)((int64_t)a[i] / (int64_t)b[i])")}
    parts = ['#include <stdint.h>\n#include <string.h>\n#include "ef_board.h"\n',
             "static void put(const char *s) { ef_board_write(s, strlen(s)); }\n",
             "static void put_u(uint32_t v) { char b[12]; int i = 11; b[i] = 0; "
             "do { b[--i] = (char)('0' + v % 10); v /= 10; } while (v); put(&b[i]); }\n"]
    for name, rows in c.items():
        op_t, res_t, expr = decl[name]
        suf = "ull" if op_t == "uint64_t" else "u"
        rsuf = "ull" if res_t == "uint64_t" else "u"
        parts.append(f"static volatile {op_t} {name}_a[] = {{{', '.join(f'{r[0]}{suf}' for r in rows)}}};\n")
        parts.append(f"static volatile {op_t} {name}_b[] = {{{', '.join(f'{r[1]}{suf}' for r in rows)}}};\n")
        parts.append(f"static const {res_t} {name}_r[] = {{{', '.join(f'{r[2]}{rsuf}' for r in rows)}}};\n")
        parts.append(f"static uint32_t check_{name}(void) {{\n    volatile {op_t} *a = {name}_a, *b = {name}_b;\n"
                     f"    uint32_t bad = 0;\n    for (uint32_t i = 0; i < {len(rows)}u; i++)\n"
                     f"        if (({res_t})({expr}) != {name}_r[i]) bad++;\n    return bad;\n}}\n")
    parts.append("int main(void) {\n    ef_board_init();\n")
    for name, rows in c.items():
        parts.append(f'    put("{name} "); put_u(check_{name}()); put(" of {len(rows)}\\n");\n')
    parts.append("    return 0;\n}\n")
    return "".join(parts)
