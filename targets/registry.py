"""Every target by name: `get_target("nano33ble", port="/dev/ttyACM0")`, `all_specs()` for `edgefold targets`.

Each entry is "module:Class" and is imported only when asked for, so a target whose optional dependencies are
missing does not break the others.
"""

from __future__ import annotations

import importlib
from typing import Any

from edgefold.targets.base import DeviceSpec, Target

from edgefold.core.errors import EdgefoldError

TARGETS: dict[str, str] = {
    # microcontrollers: the two USB boards and their QEMU twins
    "nano33ble": "edgefold.targets.nano33ble:Nano33BleTarget",
    "esp-eye": "edgefold.targets.esp_eye:EspEyeTarget",
    "nano33ble-qemu": "edgefold.targets.qemu.nano33ble:NanoQemuTarget",
    "esp-eye-qemu": "edgefold.targets.qemu.esp_eye:EspEyeQemuTarget",
    # Linux boards over SSH: the Jetson Nano and its loopback-sshd twin
    "jetson-nano": "edgefold.targets.jetson:JetsonNanoTarget",
    "jetson-local": "edgefold.targets.jetson:JetsonLocalTarget",
}


def names() -> list[str]:
    return list(TARGETS)


def target_class(name: str) -> type[Target]:
    try:
        ref = TARGETS[name]
    except KeyError:
        raise EdgefoldError(f"unknown target {name!r}; choose one of: {', '.join(TARGETS)}") from None
    mod, cls = ref.split(":")
    try:
        return getattr(importlib.import_module(mod), cls)
    except (ImportError, AttributeError) as e:
        raise EdgefoldError(f"target {name} is not available in this installation ({e})") from None


def get_target(name: str, **options: Any) -> Target:
    """A ready Target; options are the target's keyword arguments (port=, fault=, retries=, ...), checked against
    the options it declares (unknown keys and bad values are a one-line error)."""
    cls = target_class(name)
    return cls(**cls.check_options(options))


get = get_target  # short alias


def spec(name: str) -> DeviceSpec:
    return target_class(name).spec


def all_specs() -> list[DeviceSpec]:
    """Specs of every target that imports (a broken optional one is left out, not fatal)."""
    out = []
    for n in TARGETS:
        try:
            out.append(spec(n))
        except EdgefoldError:
            continue
    return out
