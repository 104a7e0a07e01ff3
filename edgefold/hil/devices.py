"""Device discovery: which lane (attached board, SSH host, twin) runs a target's cells, or why none can."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass

from edgefold.core.errors import EdgefoldError
from edgefold.hil.matrix import DeviceConfig
from edgefold.targets import usb
from edgefold.targets.usb import SerialDevice


@dataclass
class Lane:
    """One device: its cells run in sequence. `absent` holds the reason when it cannot be reached."""

    name: str
    target: str
    port: str | None = None
    absent: str | None = None
    device: DeviceConfig | None = None


def _ssh_reachable(host: str, timeout: float = 3.0) -> str | None:
    """None if host[:port] accepts TCP on its SSH port, else the reason."""
    h = host.rsplit("@", 1)[-1]
    port = 22
    if re.fullmatch(r"[^:]+:\d+", h):
        h, p = h.rsplit(":", 1)
        port = int(p)
    try:
        with socket.create_connection((h, port), timeout=timeout):
            return None
    except OSError as e:
        return f"{h}:{port} unreachable ({e.strerror or e})"


def _configured_ssh_host(target: str) -> str | None:
    """host[:port] from the targets configuration `edgefold deploy` uses for SSH targets, if any."""
    from edgefold.targets import jetson

    try:
        o = jetson.load_options(target, {})
    except EdgefoldError:  # a broken targets.toml: deploy reports it with the file and key
        return None
    return f"{o['host']}:{o.get('port', 22)}" if o.get("host") else None


def resolve_lane(dev: DeviceConfig, ports: list[SerialDevice] | None = None) -> Lane:
    """Find the device for a target now: by named port, by VID:PID, by SSH host; twins are always here."""
    if dev.kind == "twin":
        return Lane(dev.target, dev.target, None, None, dev)
    if dev.kind == "ssh":
        host = (f"{dev.options['host']}:{dev.options.get('port', 22)}" if dev.options.get("host")
                else _configured_ssh_host(dev.target))
        if not host:
            return Lane(dev.target, dev.target, None,
                        f"no host configured for {dev.target} (set host/user in the targets.toml [{dev.target}] "
                        f"section that `edgefold deploy` reads, or [devices.{dev.target}] options)", dev)
        why = _ssh_reachable(host)
        # probed here only: deploy connects with its own configuration plus the device's options
        return Lane(f"{dev.target}@{host}", dev.target, None, why and f"{dev.target}: {why}", dev)
    ports = usb.list_devices() if ports is None else ports
    if dev.port:
        if dev.port in {p.port for p in ports} or os.path.exists(dev.port):
            return Lane(f"{dev.target}@{dev.port}", dev.target, dev.port, None, dev)
        return Lane(f"{dev.target}@{dev.port}", dev.target, dev.port, f"{dev.target}: port {dev.port} not present", dev)
    found = sorted((p for p in ports if p.usb_id in dev.usb), key=lambda p: p.port)
    if not found:
        ids = ", ".join(dev.usb) or "none configured"
        return Lane(dev.target, dev.target, None, f"{dev.target}: no device with USB id {ids} attached", dev)
    return Lane(f"{dev.target}@{found[0].port}", dev.target, found[0].port, None, dev)

