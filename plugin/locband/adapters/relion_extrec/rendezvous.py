"""The meeting of the two half-set calls of one iteration: who is current, how long to wait.

The files live in :mod:`locband.io.relion_rendezvous`; this module decides what they mean.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.errors import InputFileError, RendezvousError
from locband.io.paths import is_file, same_path
from locband.io.procfs import process_alive, process_started_unix
from locband.io.relion_metadata import SEQUENTIAL_FLAG
from locband.io.relion_rendezvous import PairFolder, file_stamp
from locband.io.relion_star import HookName, parse_hook_name

__all__ = ["Rendezvous", "partner_path", "report_failure"]

# A partner's input arrays written this much earlier than our own cannot belong to the same
# iteration: both ranks write theirs right before their concurrent calls (observed 1-5 ms apart),
# whereas a re-run of a crashed iteration comes at least one expectation step later.
_STALE_SLACK_S = 60.0
# A failure marker written before this call started may be left by an earlier call of the same
# iteration (RELION rewrites the arrays for every real call, but a call repeated by hand finds
# them unchanged). It counts only if no new call of the other half removes it within this time;
# the two calls RELION makes start within milliseconds of each other.
_OLD_FAILURE_GRACE_S = 30.0
_MPI_JOB_VARS = ("PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid", "OMPI_MCA_orte_ess_jobid", "PMI_KVSNAME",
                 "SLURM_STEP_ID_UNIQUE")
_FIRST_SLEEP_S, _LONGEST_SLEEP_S, _SLEEP_GROWTH = 0.01, 0.1, 1.5


def _mpi_job_id() -> str | None:
    for var in _MPI_JOB_VARS:
        if os.environ.get(var):
            return f"{var}={os.environ[var]}"
    return None


def partner_path(path: str, half: int) -> str:
    """The other half's file name: ``_half1`` <-> ``_half2`` in the file name (not the folders)."""
    p = Path(path)
    mine, other = f"_half{half}_", f"_half{3 - half}_"
    if mine not in p.name:
        raise InputFileError(f"{path!r} does not contain {mine!r}; cannot name the other half's file")
    return str(p.with_name(p.name.replace(mine, other, 1)))


class Rendezvous:
    """Meeting point of the two half-set calls of one iteration (and class/body).

    Folder ``<job>/locband_extrec/<out>_itNNN_<class|body>NNN/`` holds, per half, the
    unregularised map ``halfN.mrc`` and then a record ``halfN.json`` that identifies the run:
    size and mtime (ns) of that half's ``_data_real.mrc``, which relion_refine rewrites before
    every call, plus the MPI job id where the launcher exports one. A partner record is taken as
    current only if it names the partner's ``_data_real.mrc`` with the size and mtime that file
    has now, if that file is not older than ours by more than a minute, and (where both calls
    know one) if the MPI job ids agree. Anything else (a crashed or re-run iteration) is stale
    and simply waited past: records are overwritten, never locked, so stale state cannot
    deadlock. A call that fails writes ``halfN.failed`` so that the other fails at once. A
    failure marker belongs to the call that wrote it: it counts at once only if it was written
    after this call started (the two calls of one iteration run at the same time); an older one,
    left by an earlier call of the same iteration (a call repeated by hand finds RELION's arrays
    unchanged), counts only if no new call of the other half has removed it within 30 s.

    Waiting polls with sleeps growing from 10 ms to 100 ms, so the hand-over takes well under a
    second, up to ``timeout_s``; it also stops when the calling relion_refine has exited.
    """

    def __init__(self, job_dir: Path, name: HookName, data_real: str, *, timeout_s: float,
                 watch_pid: int | None = None, sequential_hint: str | None = None) -> None:
        if name.half is None:
            raise ValueError("a rendezvous needs a half-set call")
        self.half = name.half
        self.other = 3 - name.half
        self.files = PairFolder.of(job_dir, name)
        self.folder = self.files.folder
        self.name = name
        self.own_data = data_real
        self.partner_data = partner_path(data_real, name.half)
        self.timeout_s = timeout_s
        self.watch_pid = watch_pid
        self.started_unix = process_started_unix()
        #: a file of the job that mentions --sequential_halves_recons (named in the timeout message)
        self.sequential_hint = sequential_hint

    def _record(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {"half": self.half, "iteration": self.name.iteration, "data_real": self.own_data,
                "data_real_stamp": file_stamp(self.own_data), "mpi_job": _mpi_job_id(), "pid": os.getpid(),
                "host": socket.gethostname(), "call_started_unix": self.started_unix, "written_unix": time.time(),
                **extra}

    def begin(self) -> None:
        """Create the folder and clear this half's own record and failure marker of an earlier run."""
        self.files.begin(self.half)

    def publish(self, volume: npt.NDArray[np.float32], *, pixel_size_angstrom: float) -> None:
        """Write this half's map, then its record."""
        self.files.publish(self.half, volume, pixel_size_angstrom=pixel_size_angstrom, record=self._record({}))

    def fail(self, reason: str) -> None:
        """Tell the other half that this one failed (best effort)."""
        try:
            record = self._record({"reason": reason})
        except OSError:  # our own arrays are gone: the other half could not tell the marker is ours
            return
        self.files.write_failure(self.half, record)

    def _current(self, path: Path) -> dict[str, Any] | None:
        """The partner's record at ``path`` if it belongs to this run, else None."""
        rec = self.files.read_record(path)
        try:
            now, own = file_stamp(self.partner_data), file_stamp(self.own_data)
        except OSError:
            return None
        if rec is None or rec.get("half") != self.other:
            return None
        if not same_path(str(rec.get("data_real")), self.partner_data) or rec.get("data_real_stamp") != now:
            return None
        if now["mtime_ns"] < own["mtime_ns"] - int(_STALE_SLACK_S * 1e9):
            return None
        mine = _mpi_job_id()
        if mine and rec.get("mpi_job") and rec["mpi_job"] != mine:
            return None
        return rec

    def _failure_counts(self, marker: dict[str, Any]) -> bool:
        """Whether the other half's failure marker belongs to a call that ran with this one."""
        written = float(marker.get("written_unix") or 0.0)
        if written >= self.started_unix:
            return True
        # older than this call: an earlier call's, unless no new call of the other half shows up
        return time.time() - self.started_unix > _OLD_FAILURE_GRACE_S

    def _check_failed(self) -> None:
        bad = self._current(self.files.failure_path(self.other))
        if bad is None or not self._failure_counts(bad):
            return
        when = ""
        if float(bad.get("written_unix") or 0) < self.started_unix:
            stamp = time.strftime("%H:%M:%S", time.localtime(float(bad.get("written_unix") or 0)))
            when = f" (at {stamp}, before this call started, and no new call of half {self.other} came)"
        raise RendezvousError(f"half {self.other} of iteration {self.name.iteration} failed{when}: "
                              f"{bad.get('reason', 'no reason given')}")

    def _timeout(self) -> RendezvousError:
        hint = f" ({self.sequential_hint} mentions {SEQUENTIAL_FLAG})" if self.sequential_hint else ""
        return RendezvousError(
            f"timed out after {self.timeout_s:g} s waiting for half {self.other} of iteration "
            f"{self.name.iteration}: no current {str(self.files.record_path(self.other))!r} (written by the "
            f"half-{self.other} call for {self.partner_data!r}). Both half-set calls must run at the same time: use "
            "relion_refine_mpi with split halves and at least 3 MPI processes, without "
            f"{SEQUENTIAL_FLAG}, and pass RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE to every rank "
            f"(mpirun -x); or raise --timeout{hint}")

    def wait_for_partner(self) -> npt.NDArray[np.float32]:
        """Block until the other half's current map is there; return it.

        Raises
        ------
        RendezvousError
            The other half failed, relion_refine exited, or ``timeout_s`` passed.
        """
        t0 = time.monotonic()
        sleep = _FIRST_SLEEP_S
        while True:
            self._check_failed()
            rec = self._current(self.files.record_path(self.other))
            if rec is not None:
                found = self.files.read_map_if_current(self.other, rec.get("map_stamp"))
                if found is not None:
                    return found
            if time.monotonic() - t0 > self.timeout_s:
                raise self._timeout()
            if self.watch_pid is not None and not process_alive(self.watch_pid):
                raise RendezvousError(f"relion_refine (pid {self.watch_pid}) has exited while half {self.half} "
                                      f"was waiting for half {self.other}; giving up")
            time.sleep(sleep)
            sleep = min(sleep * _SLEEP_GROWTH, _LONGEST_SLEEP_S)

    def clean_older(self) -> None:
        """Remove this half's files of earlier iterations (the other half has long read them).

        The previous pair is kept: the final joined call may use it.
        """
        self.files.remove_iterations_before(self.name, self.half, self.name.iteration - 1)


def report_failure(star_path: str, reason: str) -> None:
    """Best effort: leave a failure marker for the other half of a call that failed early.

    Used when the hook STAR file itself cannot be read; the data file is then assumed at
    RELION's conventional name ``<root>_external_reconstruct_data_real.mrc``. Without it the
    other half cannot tell this marker from a stale one and waits until its timeout.
    """
    try:
        name = parse_hook_name(star_path)
    except InputFileError:
        return
    if name.half is None:
        return
    data_real = f"{name.root}_external_reconstruct_data_real.mrc"
    if is_file(data_real):
        Rendezvous(Path(star_path).parent, name, data_real, timeout_s=1.0).fail(reason)
