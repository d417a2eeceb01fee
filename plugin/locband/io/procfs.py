"""What the operating system says about processes: the ancestors of this one, its age, a pid's life.

Read from Linux's ``/proc``; elsewhere the answers are empty (no ancestors, age unknown), so the
callers fall back to what they do without them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["ancestor_commands", "process_seconds", "process_started_unix", "process_alive"]

_MAX_DEPTH = 8  # relion_refine_mpi -> sh -c -> wrapper -> python: a few levels at most


def ancestor_commands(max_depth: int = _MAX_DEPTH) -> list[tuple[int, str]]:
    """(pid, command line) of this process's ancestors, nearest first (Linux /proc; empty elsewhere)."""
    out = []
    pid = os.getppid()
    for _ in range(max_depth):
        if pid <= 1:
            break
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        out.append((pid, cmd.strip()))
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def process_seconds() -> float | None:
    """Wall time since this process started (start-up and imports included), or None where unknown."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return None


def process_started_unix() -> float:
    """When this process started (Unix time), else now."""
    return time.time() - (process_seconds() or 0.0)


def process_alive(pid: int) -> bool:
    """True while process ``pid`` exists (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
