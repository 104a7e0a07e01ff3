"""Attached serial devices, recognised by USB VID:PID, and the Nano 33 BLE's 1200-baud touch.

The Nano 33 BLE runs its sketch as 2341:805A; opening its port at 1200 baud and closing it makes the sketch jump
to the bootloader, which re-enumerates as 2341:005A on a (usually) different port. The ESP-EYE sits behind a
CP2102 bridge (10C4:EA60) that never re-enumerates; esptool resets it through DTR/RTS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edgefold.core.errors import DeviceError


def known() -> dict[str, tuple[str, str]]:
    """VID:PID (lower-case hex) -> (target, mode), from the targets' specs (the registry is the one table)."""
    from edgefold.targets import registry

    return {uid: (spec.name, mode) for spec in registry.all_specs() for uid, mode in spec.usb_modes}


@dataclass(frozen=True)
class SerialDevice:
    port: str
    usb_id: str | None  # "2341:805a" or None when not a USB device
    description: str = ""
    serial_number: str | None = None
    target: str | None = None  # recognised board, or None
    mode: str | None = None  # "sketch" | "bootloader" | "cp2102"


def usb_id(vid: int | None, pid: int | None) -> str | None:
    return None if vid is None or pid is None else f"{vid:04x}:{pid:04x}"


def recognise(uid: str | None) -> tuple[str | None, str | None]:
    return known().get((uid or "").lower(), (None, None))


def from_port_info(info) -> SerialDevice:
    """A SerialDevice from a pyserial ListPortInfo (or anything with device/vid/pid/description)."""
    uid = usb_id(getattr(info, "vid", None), getattr(info, "pid", None))
    target, mode = recognise(uid)
    return SerialDevice(port=info.device, usb_id=uid, description=getattr(info, "description", "") or "",
                        serial_number=getattr(info, "serial_number", None), target=target, mode=mode)


def list_devices(lister: Callable[[], Iterable] | None = None) -> list[SerialDevice]:
    """Every serial port the OS shows (USB ones with their VID:PID), recognised boards first."""
    if lister is None:
        from serial.tools import list_ports

        lister = list_ports.comports
    devs = [from_port_info(i) for i in lister()]
    return sorted(devs, key=lambda d: (d.target is None, d.port))


def find(target: str, modes: Iterable[str] | None = None, lister: Callable[[], Iterable] | None = None
         ) -> list[SerialDevice]:
    want = set(modes) if modes is not None else None
    return [d for d in list_devices(lister) if d.target == target and (want is None or d.mode in want)]


def pick_port(target: str, port: str | None = None, lister: Callable[[], Iterable] | None = None) -> str:
    """The port to use: the one given, or the single attached board of this kind (clear error otherwise)."""
    if port:
        return port
    found = find(target, lister=lister)
    if not found:
        ids = ", ".join(k for k, (t, _) in known().items() if t == target)
        raise DeviceError(f"no {target} attached (looked for USB {ids}); plug it in or pass --port")
    if len(found) > 1:
        raise DeviceError(f"{len(found)} {target} boards attached ({', '.join(d.port for d in found)}); pass --port")
    return found[0].port


def touch_1200(port: str) -> None:
    """Open the port at 1200 baud and drop DTR: the Arduino sketch reboots into its bootloader."""
    import serial

    try:
        s = serial.Serial()
        s.port = port
        s.baudrate = 1200
        s.dtr = False  # set before open: the line coding (1200) and DTR low reach the board together
        s.open()
        time.sleep(0.05)
        s.close()
    except (serial.SerialException, OSError, ValueError) as e:
        raise DeviceError(f"1200-baud touch on {port} failed: {e}") from None


def wait_for(target: str, modes: Iterable[str], timeout_s: float = 10.0, poll_s: float = 0.25,
             exclude: Iterable[str] = (), lister: Callable[[], Iterable] | None = None) -> SerialDevice:
    """Wait (bounded) for a board in one of `modes` to appear, e.g. the bootloader after the touch."""
    modes, exclude = set(modes), set(exclude)
    deadline = time.monotonic() + timeout_s
    while True:
        found = [d for d in find(target, modes, lister) if d.port not in exclude]
        if found:
            return found[0]
        if time.monotonic() >= deadline:
            raise DeviceError(f"{target} did not re-appear as {'/'.join(sorted(modes))} within {timeout_s:g} s "
                              "(double-tap the reset button to enter the bootloader by hand, then retry)")
        time.sleep(poll_s)


def enter_bootloader(port: str, timeout_s: float = 10.0, lister: Callable[[], Iterable] | None = None) -> str:
    """Nano 33 BLE: 1200-baud touch, then the bootloader's port after re-enumeration."""
    already = find("nano33ble", {"bootloader"}, lister)
    if already:
        return already[0].port
    touch_1200(port)
    return wait_for("nano33ble", {"bootloader"}, timeout_s, lister=lister).port


def wait_for_sketch(timeout_s: float = 15.0, lister: Callable[[], Iterable] | None = None) -> str:
    """Nano 33 BLE after upload: the sketch's port (it may differ from the one before the upload)."""
    return wait_for("nano33ble", {"sketch"}, timeout_s, lister=lister).port


def describe(dev: SerialDevice) -> str:
    what = f"{dev.target} ({dev.mode})" if dev.target else "-"
    return f"{dev.port}  {dev.usb_id or 'no USB id'}  {what}  {dev.description}"


__all__ = ["known", "SerialDevice", "list_devices", "find", "pick_port", "touch_1200", "wait_for",
           "enter_bootloader", "wait_for_sketch", "recognise"]
