"""`edgefold build`: compress -> export -> build, no flash: the board's PlatformIO project, the firmware when the
toolchain is installed, and its Flash / RAM sizes (DIR/firmware.json)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefold.commands.common import add_deploy_args, console, err_console, progress
from edgefold.core.artifacts import FirmwareBuild


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build", help="compress, export and build the firmware for a device, without flashing",
        description="Compress and export the model, then generate the board's PlatformIO project (nano33ble, "
                    "esp-eye) and build its firmware when the toolchain is installed (twins: the ELF); writes "
                    "the sizes to DIR/firmware.json. Nothing is flashed. Same flags as `edgefold deploy`.")
    add_deploy_args(p, "device: nano33ble, esp-eye, or a twin: nano33ble-qemu, esp-eye-qemu (see `edgefold targets`)",
                    "run folder (compress/, build-input/, build/ with the project or firmware, firmware.json)")
    p.add_argument("--offline", action="store_true",
                   help="build a board's firmware only if its PlatformIO platform is installed (no download "
                        "attempt); the project is written either way")
    p.set_defaults(func=run, fault=None)


def run(args: argparse.Namespace) -> int:
    from edgefold.api import build_firmware, check_profile
    from edgefold.commands.deploy import deploy_config
    from edgefold.targets.registry import target_class

    cfg = deploy_config(args)
    cfg.validate()  # before the warning: a bad flag prints its error alone
    check_profile(cfg, target_class(cfg.target))
    if not args.weights:
        err_console.print("warning: no --weights: the model's weights are random (its accuracy means nothing)")
    with progress("build", eta=True) as status:
        rec = build_firmware(cfg, status, status.epochs, offline=True if args.offline else None)
    print_build(rec, Path(args.out))
    return 0


def _used(used: int | None, total: int | None) -> str:
    if used is None:
        return "-"
    return f"{used:,} B" + (f" of {total:,} B ({100 * used / total:.1f} %)" if total else "")


def print_build(r: FirmwareBuild, out: Path) -> None:
    from rich.table import Table

    t = Table(title=f"{r.target} · {r.model} · {r.backend} · build only")
    t.add_column("")
    t.add_column("value")
    if r.project:
        t.add_row("PlatformIO project", str(out / r.project))
    t.add_row("firmware", str(out / r.firmware) if r.firmware else "not built")
    t.add_row("Flash (static, linker)", _used(r.flash, r.flash_total))
    t.add_row("RAM (static, linker)", _used(r.static_ram, r.ram_total))
    if r.arena_bytes is not None:
        t.add_row("model arena", f"{r.arena_bytes:,} B")
    if r.config.get("profile"):
        t.add_row("per-step profile", "on: PROF/STEP records after the timed runs")
    console.print(t)
    if r.not_built:
        console.print(f"note: no firmware: {r.not_built}")
    console.print(f"result: {out / r.FILE}")
