"""How a command shows the engine's progress: a bar on a terminal, plain lines in a log."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from locband.engine.params import ProgressCallback

__all__ = ["TerminalProgress", "stage"]

_BAR_WIDTH = 30
_MESSAGE_WIDTH = 40


class TerminalProgress:
    """Progress callback (``progress(fraction, message)``): a bar on a terminal, timestamped lines otherwise.

    Parameters
    ----------
    stream : text stream, optional
        Where to write (default: standard error).
    enabled : bool
        False: show nothing (``--quiet``).
    """

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self._last_msg = ""

    def __call__(self, fraction: float, message: str) -> None:
        """Show ``fraction`` (0 to 1) and ``message``."""
        if not self.enabled:
            return
        fraction = min(max(fraction, 0.0), 1.0)
        elapsed = time.perf_counter() - self.t0
        if self.tty:
            filled = int(round(_BAR_WIDTH * fraction))
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {fraction * 100:5.1f}% {message[:_MESSAGE_WIDTH]:<{_MESSAGE_WIDTH}}")
            if fraction >= 1.0:
                self.stream.write("\n")
        elif message != self._last_msg:
            self.stream.write(f"[{elapsed:7.2f} s] {fraction * 100:5.1f}% {message}\n")
        self._last_msg = message
        self.stream.flush()


def stage(progress: ProgressCallback | None, start: float, span: float, label: str = "") -> ProgressCallback | None:
    """One stage of a longer run: ``progress`` from ``start`` to ``start + span``, messages prefixed ``label``.

    Two engine runs in one job (the filter, then the interpretation map) report as one bar.
    """
    if progress is None:
        return None
    inner = progress

    def callback(fraction: float, message: str) -> None:
        inner(start + span * min(max(fraction, 0.0), 1.0), f"{label}{message}")

    return callback
