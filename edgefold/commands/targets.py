"""`edgefold targets`: the devices edgefold can deploy to, and the serial boards attached right now."""

from __future__ import annotations

import argparse
import os

from edgefold.commands.common import console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("targets", help="list deploy targets and attached boards (recognised by USB VID:PID)")
    p.add_argument("--no-usb", action="store_true", help="do not scan serial ports")
    p.set_defaults(func=run)


def _size(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.3g} GB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.3g} MB"
    return f"{n / 1024:.4g} KB"


def host_ram() -> int | None:
    """Physical memory of this machine (what a twin that runs here really has)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from edgefold.targets import registry, usb

    t = Table(title="edgefold targets", padding=(0, 1), collapse_padding=True)
    for c in ("target", "device", "CPU", "RAM", "Flash", "backends", "USB id"):
        # names and ids are what users type: never wrap them; the descriptions take what room is left
        t.add_column(c, no_wrap=c not in ("device", "CPU"), min_width=16 if c == "device" else None)
    for s in registry.all_specs():
        clock = f", {s.clock_hz / 1e6:g} MHz" if s.clock_hz else ""
        title = escape(s.title + (" [emulated]" if s.emulated else ""))  # [...] is markup to rich
        ram, flash = _size(s.ram_bytes), _size(s.flash_bytes)
        if s.emulated and s.kind == "linux":  # the twin runs on this machine: its figures, not the Jetson's
            real = host_ram()
            ram, flash = (f"{_size(real)} (host)" if real else "host"), "host"
        t.add_row(s.name, title, s.cpu + clock, ram, flash, "\n".join(s.backends), "\n".join(s.usb_ids) or "-")
    console.print(t)
    if args.no_usb:
        return 0
    try:
        devs = usb.list_devices()
    except Exception as e:  # noqa: BLE001 - a broken serial subsystem must not break the listing
        console.print(f"serial ports: cannot list ({e})")
        return 0
    others = [dv for dv in devs if dv.usb_id is None]
    devs = [dv for dv in devs if dv.usb_id is not None]
    if not devs:
        console.print(f"attached USB serial devices: none ({len(others)} other serial ports)")
        return 0
    d = Table(title="attached serial devices")
    for c in ("port", "USB id", "board", "description"):
        d.add_column(c)
    for dev in devs:
        board = f"{dev.target} ({dev.mode})" if dev.target else "-"
        d.add_row(dev.port, dev.usb_id or "-", board, dev.description)
    console.print(d)
    return 0
