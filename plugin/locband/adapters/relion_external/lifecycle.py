"""RELION job lifecycle: which exit file for which ending, abort requests and the job log.

RELION's pipeliner knows that a job has ended only from a file the job leaves in its output
folder (:mod:`locband.io.relion_control`). A job that ends without one stays "Running" forever and
blocks ``relion_pipeliner --RunJobs`` and Schedules, so :func:`relion_job` writes one on every
way out, including errors, Ctrl-C, and SIGTERM or SIGHUP (what ``scancel`` and queue systems
send) once the command line has turned them into :class:`locband._signals.Interrupted`. Only a
SIGKILL of the whole process group leaves none; a SIGKILL of Python alone is caught by the
wrapper script (``wrappers/locband-relion-external``), which then writes the failure file.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from locband.engine.params import ProgressCallback
from locband.errors import JobAborted, one_line
from locband.io.atomic import ensure_output_dir
from locband.io.relion_control import (
    RELION_JOB_ABORT_NOW,
    RELION_JOB_EXIT_ABORTED,
    RELION_JOB_EXIT_FAILURE,
    RELION_JOB_EXIT_SUCCESS,
    abort_requested,
    clear_exit_files,
    remove_abort_request,
    write_exit_file,
    write_job_log,
)

__all__ = ["JobControl", "relion_job"]


class JobControl:
    """Handle of a running RELION job: abort checks, progress and the job log.

    Log lines go to stdout (RELION appends them to ``run.out``) and to ``<o>/locband.log``.
    """

    def __init__(self, out_dir: Path, *, stdout: TextIO | None = None) -> None:
        self.out_dir = out_dir
        self.stdout = stdout if stdout is not None else sys.stdout
        self._log_lines: list[str] = []

    @property
    def abort_requested(self) -> bool:
        """True once ``RELION_JOB_ABORT_NOW`` exists in the output folder."""
        return abort_requested(self.out_dir)

    def check_abort(self, stage: str = "") -> None:
        """Raise :class:`~locband.errors.JobAborted` if the user asked to abort."""
        if self.abort_requested:
            where = f" during {stage}" if stage else ""
            raise JobAborted(f"abort requested ({RELION_JOB_ABORT_NOW} found){where}")

    def log(self, message: str) -> None:
        """One line to stdout (``run.out``) and to ``locband.log``."""
        line = f"locband: {message}"
        print(line, file=self.stdout, flush=True)
        self._log_lines.append(line)
        write_job_log(self.out_dir, self._log_lines)

    def progress(self, inner: ProgressCallback | None = None) -> ProgressCallback:
        """Wrap ``inner`` into an engine progress callback that checks for an abort request on every call."""

        def callback(fraction: float, message: str) -> None:
            self.check_abort(message)
            if inner is not None:
                inner(fraction, message)

        return callback


@contextlib.contextmanager
def relion_job(out_dir: str | Path, *, stdout: TextIO | None = None,
               stderr: TextIO | None = None) -> Iterator[JobControl]:
    """Run the body as a RELION job in ``out_dir`` and always leave an exit file.

    Creates ``out_dir``, removes exit files of an earlier run, then yields a :class:`JobControl`.
    On a normal end it writes ``RELION_JOB_EXIT_SUCCESS``. On :class:`~locband.errors.JobAborted`
    (or when ``RELION_JOB_ABORT_NOW`` exists at the end) it writes ``RELION_JOB_EXIT_ABORTED``
    and removes ``RELION_JOB_ABORT_NOW``. On any other exception it prints the reason to stderr
    (``run.err``: one line for bad input, write errors and an interruption by SIGINT, SIGTERM or
    SIGHUP, as :func:`locband.errors.one_line` says; the traceback for anything else), writes
    ``RELION_JOB_EXIT_FAILURE`` and re-raises, so that the caller can turn it into an exit code.

    Raises
    ------
    InputFileError
        ``out_dir`` cannot be created (no exit file can be written then).
    """
    err = stderr if stderr is not None else sys.stderr
    out = ensure_output_dir(out_dir)
    clear_exit_files(out)
    job = JobControl(out, stdout=stdout)
    try:
        job.check_abort("start-up")
        yield job
        job.check_abort("the last stage")
    except JobAborted as exc:
        print(f"locband: {exc}; stopping", file=err, flush=True)
        write_exit_file(out, RELION_JOB_EXIT_ABORTED)
        # as RELION's External-job documentation asks: the request is answered, remove it
        remove_abort_request(out)
        raise
    except KeyboardInterrupt as exc:  # Ctrl-C, or scancel's SIGTERM turned into Interrupted
        write_exit_file(out, RELION_JOB_EXIT_FAILURE)
        print(f"locband: {exc if str(exc) else 'interrupted'}; job stopped, {RELION_JOB_EXIT_FAILURE} written",
              file=err, flush=True)
        raise
    except BaseException as exc:
        _say_why(exc, err)
        write_exit_file(out, RELION_JOB_EXIT_FAILURE)
        raise
    else:
        write_exit_file(out, RELION_JOB_EXIT_SUCCESS)


def _say_why(exc: BaseException, err: TextIO) -> None:
    message = one_line(exc)
    if message is not None:  # expected (bad input, a write error): the message says it all
        print(f"locband: error: {message}", file=err, flush=True)
        return
    print(f"locband: job failed: {type(exc).__name__}: {exc}", file=err)
    traceback.print_exc(file=err)
    err.flush()
