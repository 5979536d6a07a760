"""What the bench reads from /proc: processes by name, their CPU time and their peak memory."""

from __future__ import annotations

import os
from pathlib import Path


def pids_named(name: str) -> list[int]:
    """Every process whose command name is `name` (postgres backends, beam.smp)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def with_children(pid: int) -> list[int]:
    """A process and its children (a server's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [pid, *(int(child) for child in children.read_text().split())]
    except OSError:
        return [pid]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def peak_rss_mb(pids: list[int]) -> float:
    """The largest peak resident size (VmHWM) among these processes."""
    peaks = []
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        peaks += [int(line.split()[1]) / 1024 for line in lines if line.startswith("VmHWM:")]
    return max(peaks, default=0.0)
