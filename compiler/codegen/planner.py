"""Static arena planner: every buffer gets a fixed offset ahead of time.

Buffers have a size and a lifetime [first, last] in step indices. Three ways to save RAM over a plain
first-fit allocator, all decided here and nowhere else:
  * aliases (RESHAPE and friends) are merged by the caller before planning: one buffer, the union lifetime;
  * in-place chains: an op whose kernel writes its output in raster order strictly behind its reads may place
    the output `delta` bytes *below* an input that dies at that op (delta = 0: exact alias for element-wise ops).
    Such pairs are glued into one block with fixed relative offsets;
  * greedy-by-size placement of the blocks (largest first, lowest offset that does not collide in time).
Both the plan with in-place chains and the plan without are computed; the smaller one wins.
"""

from __future__ import annotations

from dataclasses import dataclass

ALIGN = 16


def align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass
class Buffer:
    key: str
    size: int
    first: int
    last: int


@dataclass
class Plan:
    offsets: dict[str, int]
    arena_bytes: int
    in_place: list[tuple[str, str, int]]  # (output, input, delta) pairs that were glued


def _blocks(buffers: dict[str, Buffer], overlaps: list[tuple[str, str, int]]):
    # block id -> {key: relative offset}; processed in order of the output's birth so chains grow forwards
    rel: dict[str, tuple[int, int]] = {k: (i, 0) for i, k in enumerate(buffers)}
    members: dict[int, dict[str, int]] = {i: {k: 0} for i, k in enumerate(buffers)}
    used = []
    for out, inp, delta in sorted(overlaps, key=lambda o: buffers[o[0]].first):
        bo, _ = rel[out]
        bi, ri = rel[inp]
        if bo == bi or len(members[bo]) != 1 or buffers[inp].last != buffers[out].first:
            continue
        # any other member of the input's block that is still alive would be clobbered
        if any(buffers[k].last >= buffers[out].first and k != inp for k in members[bi]):
            continue
        ro = ri - delta
        old = members[bi]
        lo_old = min(r for r in old.values())
        hi_old = max(r + buffers[k].size for k, r in old.items())
        lo, hi = min(lo_old, ro), max(hi_old, ro + buffers[out].size)
        if (hi - lo) >= (hi_old - lo_old) + buffers[out].size:
            continue  # no saving
        del members[bo]
        old[out] = ro
        rel[out] = (bi, ro)
        used.append((out, inp, delta))
    blocks = []
    for mem in members.values():
        lo = min(mem.values())
        size = max(r - lo + buffers[k].size for k, r in mem.items())
        first = min(buffers[k].first for k in mem)
        last = max(buffers[k].last for k in mem)
        blocks.append((align(size), first, last, {k: r - lo for k, r in mem.items()}))
    return blocks, used


def _place(blocks) -> tuple[dict[str, int], int]:
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    offsets: dict[str, int] = {}
    top = 0
    for size, first, last, mem in sorted(blocks, key=lambda b: (-b[0], b[1])):
        if size == 0:
            off = 0
        else:
            busy = sorted((o, o + s) for o, s, f, l in placed if not (l < first or f > last))
            off = 0
            for lo, hi in busy:
                if off + size <= lo:
                    break
                off = max(off, align(hi))
        placed.append((off, size, first, last))
        top = max(top, off + size)
        for k, r in mem.items():
            offsets[k] = off + r
    return offsets, top


def plan(buffers: dict[str, Buffer], overlaps: list[tuple[str, str, int]] | None = None) -> Plan:
    """Offsets for every buffer; `overlaps` lists legal (output, input, delta) in-place placements."""
    best = None
    for ov in ([], list(overlaps or [])):
        blocks, used = _blocks(buffers, ov)
        offsets, top = _place(blocks)
        if best is None or top < best.arena_bytes:
            best = Plan(offsets, top, used)
    assert best is not None
    _verify(buffers, best)
    return best


def _verify(buffers: dict[str, Buffer], p: Plan) -> None:
    """Two buffers alive at the same step never share bytes, except an in-place pair at its one shared step."""
    glued = {(o, i) for o, i, _ in p.in_place}
    keys = [k for k in buffers if buffers[k].size]
    for a_i, a in enumerate(keys):
        A = buffers[a]
        for b in keys[a_i + 1:]:
            B = buffers[b]
            if A.last < B.first or B.last < A.first:
                continue
            if (a, b) in glued or (b, a) in glued:
                continue
            oa, ob = p.offsets[a], p.offsets[b]
            if oa < ob + B.size and ob < oa + A.size:
                raise AssertionError(f"arena plan overlap: {a} and {b}")
