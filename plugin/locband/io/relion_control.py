"""The files through which a RELION job talks to RELION's pipeliner (``src/pipeline_control.h``).

RELION knows that a job has ended only from a file the job leaves in its output folder:
``RELION_JOB_EXIT_SUCCESS``, ``RELION_JOB_EXIT_FAILURE`` or, after the user pressed *Abort*
(which creates ``RELION_JOB_ABORT_NOW``), ``RELION_JOB_EXIT_ABORTED``. Names exactly as in
RELION's source. locband's own log of a job is ``locband.log`` beside RELION's ``run.out``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from locband._signals import deferred
from locband.io.atomic import atomic_write_text

__all__ = ["RELION_JOB_EXIT_SUCCESS", "RELION_JOB_EXIT_FAILURE", "RELION_JOB_EXIT_ABORTED", "RELION_JOB_ABORT_NOW",
           "EXIT_FILES", "LOG_NAME", "abort_requested", "remove_abort_request", "clear_exit_files",
           "write_exit_file", "write_job_log"]

RELION_JOB_EXIT_SUCCESS = "RELION_JOB_EXIT_SUCCESS"
RELION_JOB_EXIT_FAILURE = "RELION_JOB_EXIT_FAILURE"
RELION_JOB_EXIT_ABORTED = "RELION_JOB_EXIT_ABORTED"
RELION_JOB_ABORT_NOW = "RELION_JOB_ABORT_NOW"

#: the files that tell RELION a job has ended
EXIT_FILES = (RELION_JOB_EXIT_SUCCESS, RELION_JOB_EXIT_FAILURE, RELION_JOB_EXIT_ABORTED)
#: the job's own log in the output folder (beside RELION's run.out)
LOG_NAME = "locband.log"


def abort_requested(out_dir: Path) -> bool:
    """True once the user pressed *Abort* (``RELION_JOB_ABORT_NOW`` exists)."""
    return (out_dir / RELION_JOB_ABORT_NOW).exists()


def remove_abort_request(out_dir: Path) -> None:
    """Remove ``RELION_JOB_ABORT_NOW`` once answered, so that running the job again does not abort at once."""
    with contextlib.suppress(OSError):
        (out_dir / RELION_JOB_ABORT_NOW).unlink()


def clear_exit_files(out_dir: Path) -> None:
    """Remove the exit files of an earlier run of the job."""
    for stale in EXIT_FILES:
        with contextlib.suppress(FileNotFoundError):
            (out_dir / stale).unlink()


def write_exit_file(out_dir: Path, name: str) -> None:
    """Leave exit file ``name`` (and no other); a second signal cannot cut this short."""
    with deferred():  # RELION waits for the file
        for stale in EXIT_FILES:
            if stale != name:
                with contextlib.suppress(OSError):
                    (out_dir / stale).unlink()
        atomic_write_text(out_dir / name, "")


def write_job_log(out_dir: Path, lines: Sequence[str]) -> None:
    """Write the job's log (every line so far) to ``locband.log``; best effort, as a log must not fail a job."""
    with contextlib.suppress(OSError):
        atomic_write_text(out_dir / LOG_NAME, "\n".join(lines) + "\n")
