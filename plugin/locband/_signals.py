"""Termination signals: one clean way out, never in the middle of a commit.

``locband``'s command line turns SIGINT, SIGTERM and SIGHUP into an :class:`Interrupted`
exception (:func:`raise_on_termination`), so that every ``finally`` and ``except`` on the way
out runs: temporary files are removed, a RELION job leaves its exit file, a refinement hook
leaves its failure marker. The exit code is 128 + the signal number, as a shell reports a
process killed by that signal: 130 (SIGINT), 143 (SIGTERM), 129 (SIGHUP).

The few steps that must not be cut in two (renaming a set of finished files onto their
names, writing an exit file) run inside :func:`deferred`: a signal that arrives there is held
and delivered, to whatever handler was in place, as soon as the step is done. Outside the
command line (the Python API) locband installs no handler; :func:`deferred` still holds a
signal over such a step and then lets the default action (or the caller's handler) have it.

Python runs signal handlers in the main thread only; in other threads both context managers
do nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["TERMINATION_SIGNALS", "Interrupted", "deferred", "raise_on_termination"]

#: the signals a user, a terminal or a queue system sends to stop a job (scancel sends SIGTERM)
TERMINATION_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A termination signal arrived; raised in the main thread by :func:`raise_on_termination`.

    A :class:`KeyboardInterrupt`, so that ``except Exception`` never swallows it.

    Attributes
    ----------
    signum : int
        The signal number.
    signal_name : str
        ``"SIGTERM"``, ...
    exit_code : int
        128 + ``signum``.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + self.signum
        super().__init__(f"interrupted by {self.signal_name}")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _swap(handler: signal.Handlers | object) -> dict[int, object]:
    """Install ``handler`` for every termination signal that is not ignored; return the old handlers."""
    previous: dict[int, object] = {}
    for sig in TERMINATION_SIGNALS:
        old = signal.getsignal(sig)
        if old is None or old == signal.SIG_IGN:  # set outside Python, or ignored (nohup): leave it
            continue
        previous[sig] = old
        signal.signal(sig, handler)  # type: ignore[arg-type]
    return previous


def _restore(previous: dict[int, object]) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)  # type: ignore[arg-type]


@contextlib.contextmanager
def raise_on_termination() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (the first one only).

    Later signals are ignored while the first one unwinds the stack, so that clean-up code is
    not cut short by a second Ctrl-C or a repeated SIGTERM. The previous handlers are restored
    on exit. Signals that are ignored when the block starts (``nohup``) stay ignored.
    """
    if not _main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if fired:
            return
        fired.append(signum)
        raise Interrupted(signum)

    previous = _swap(handler)
    try:
        yield
    finally:
        _restore(previous)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP during the block; deliver the first one held afterwards.

    For steps of milliseconds that must not be cut in two (a group of renames, an exit file).
    The held signal is raised again once the previous handlers are back, so it has exactly the
    effect it would have had a moment earlier.
    """
    if not _main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    previous = _swap(hold)
    try:
        yield
    finally:
        _restore(previous)
        if held:
            signal.raise_signal(held[0])
