"""Bytes that really crossed a network interface, from the kernel's counters (Linux)."""

from __future__ import annotations

from pathlib import Path

NET_DEV = Path("/proc/net/dev")


def interface_bytes_sent(interface: str = "lo", net_dev: Path = NET_DEV) -> int | None:
    """Bytes ``interface`` has transmitted since boot (``/proc/net/dev``'s TX bytes), or ``None`` off Linux.

    Every byte gloo sends between processes of one machine goes through the loopback interface
    ``lo`` (with its TCP/IP headers), so the difference of two readings around a collective is what
    all ranks together put on the wire, whatever the library's own accounting says.
    """
    if not net_dev.is_file():
        return None
    for line in net_dev.read_text().splitlines()[2:]:
        name, _, fields = line.partition(":")
        if name.strip() == interface:
            return int(fields.split()[8])  # receive: 8 fields, then transmit bytes
    raise ValueError(f"no network interface {interface!r} in {net_dev}: "
                     f"use one of {[ln.split(':')[0].strip() for ln in net_dev.read_text().splitlines()[2:]]}")
