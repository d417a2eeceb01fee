"""RELION ``--external_reconstruct`` hook: the two half references of every iteration, locally weighted.

relion_refine calls ``$RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE <root>_external_reconstruct.star``
once per half set, class/body and iteration, from the project directory, and reads back the map
named in the STAR file. Both half-set calls of an iteration run at the same time (MPI ranks 1
and 2), each with only its own half's Fourier sums. Here each call:

1. reads the STAR file and its arrays and reconstructs its half **without** the tau2 prior
   (RELION's normalisation, :func:`locband.engine.reconstruct.reconstruct_from_sums`);
2. publishes that map in a rendezvous folder and waits for the other half's (see
   :class:`Rendezvous`);
3. filters the pair jointly (:class:`locband.engine.local.LocalFilter`) and writes its own
   locally weighted half, ``result.half1`` or ``result.half2``, to ``rlnExtReconsResult``
   atomically, then exits 0.

Why the unregularised halves: RELION's MAP map is already Wiener-weighted by the global FSC
(``tau2 = T FSC/(1-FSC) sigma2``); filtering it again would weight twice. The local weight
``S/(S+N)`` replaces the global one; where the SNR is the same everywhere it equals the FSC, so
the result equals RELION's own MAP map there, and it is lower where the particle is weaker.

Cases (see the README section "RELION refinement hook"):

* half-set calls (``_half1``/``_half2``, also per body in multi-body): filtered jointly;
* the final joined call of an auto-refine (no ``_half``, non-zero FSC): RELION's plain MAP
  reconstruction, or with ``--final filter`` the locally weighted average of the last pair of
  unregularised halves;
* classification (several classes, no halves) and runs without split halves (FSC all zero):
  the plain MAP reconstruction and one log line; there is no second half to estimate noise from;
* ``--sequential_halves_recons`` on the command line of the calling relion_refine_mpi: the
  halves never run together, so a joint filter cannot exist; the call fails at once with a
  message saying to remove that option (see :func:`detect_sequential` for RELION's code).

The gold-standard FSC RELION uses for its resolution is computed by RELION from the raw
half-set sums before the hook is called; this hook never writes
``<root>_external_reconstruct_out.star`` (and removes a stale one left by another program), so
the FSC, tau2 and the resolution schedule stay RELION's own.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.engine.params import FilterParams, FilterResult
from locband.io.errors import InputFileError
from locband.io.relion_star import (
    ExternalReconstructStar,
    HookName,
    parse_hook_name,
    read_external_reconstruct_star,
    read_fourier_sums,
    read_job_options,
    read_model_general,
    read_optimiser_general,
    read_sampling_symmetry,
    solvent_mask_name,
)

__all__ = ["ExtRecRequest", "Rendezvous", "RendezvousError", "build_request", "detect_sequential", "run",
           "sequential_hint", "check_outputs",
           "report_failure", "partner_path", "relion_ancestor", "append_log",
           "RENDEZVOUS_DIR", "LOG_NAME", "SEQUENTIAL_FLAG"]

#: folder (inside the job folder) where the two half calls meet
RENDEZVOUS_DIR = "locband_extrec"
#: machine-readable log, one JSON object per call, in the job folder
LOG_NAME = "locband_extrec.jsonl"
SEQUENTIAL_FLAG = "--sequential_halves_recons"
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


class RendezvousError(InputFileError):
    """The other half never arrived, failed, or cannot arrive (exit 1 with the reason)."""


@dataclass(frozen=True)
class ExtRecRequest:
    """Everything one hook call needs, gathered from the STAR files and options.

    Attributes
    ----------
    star : ExternalReconstructStar
        The hook's STAR file.
    name : HookName
        Iteration, half set, class/body from the file name.
    job_dir : Path
        Folder of the STAR file (relion_refine's output folder).
    pixel_size_angstrom : float
        Voxel size (only for the local resolution in Å).
    pixel_size_source : str
        Where it came from.
    mask_path : str or None
        Solvent mask for the masked FSC (and the output with ``--apply-mask``).
    symmetry : str or None
        Point group (already applied to the sums by RELION; logged only).
    sequential : str or None
        Where ``--sequential_halves_recons`` was seen, or None.
    final_mode : str
        ``"plain"`` or ``"filter"`` for the final joined call.
    timeout_s : float
        Longest wait for the other half.
    params : FilterParams
        Engine settings.
    workers : int or None
        Threads; None: the idle cores (:func:`locband._threads.default_threads`), shared by the
        two half-set calls, which filter at the same time.
    backend : str or None
        FFT backend.
    device : str
        ``"cpu"`` or ``"cuda"`` (the filter on a GPU; the reconstruction stays on the CPU).
    notes : list of str
        What was looked up where (logged).
    """

    star: ExternalReconstructStar
    name: HookName
    job_dir: Path
    pixel_size_angstrom: float
    pixel_size_source: str
    mask_path: str | None
    symmetry: str | None
    sequential: str | None
    final_mode: str
    timeout_s: float
    params: FilterParams
    workers: int | None = None
    backend: str | None = None
    device: str = "cpu"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def case(self) -> str:
        """``"half"``, ``"final"`` (joined auto-refine result) or ``"single"`` (classification, no halves)."""
        if self.name.half is not None:
            return "half"
        return "final" if np.any(self.star.fsc[1:] != 0) else "single"


# -- request ---------------------------------------------------------------------------------

def _previous(name: HookName, suffix: str) -> Path:
    return Path(f"{name.out_root}_it{name.iteration - 1:03d}{suffix}")


def _try(fn: Callable[[], Any], notes: list[str], what: str) -> Any:
    try:
        return fn()
    except InputFileError as exc:
        notes.append(f"{what}: not used ({exc})")
        return None


def _ancestor_commands(max_depth: int = 8) -> list[tuple[int, str]]:
    """(pid, command line) of this process's ancestors (Linux /proc; empty elsewhere)."""
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


def relion_ancestor() -> tuple[int, str] | None:
    """The calling relion_refine process (pid, command line), if it can be found."""
    for pid, cmd in _ancestor_commands():
        # the program itself, or a script run by an interpreter (argv[1])
        if any("relion_refine" in Path(tok).name for tok in cmd.split()[:2]):
            return pid, cmd
    return None


def detect_sequential(name: HookName, job_dir: Path, *, ancestors: list[tuple[int, str]] | None = None) -> str | None:
    """Where the calling relion_refine runs with ``--sequential_halves_recons``, or None.

    Only the command line of the relion_refine process that called this hook counts.

    RELION (3.1.3, 4.0 and 5.0 alike) really runs the halves apart with that option: in
    ``MlOptimiserMpi::maximization()`` the rank of half 1 (``2*(i % ((size-1)/2)) + 1``) makes its
    ``externalReconstruct`` call, then ``if (do_sequential_halves_recons)
    MPI_Barrier(MPI_COMM_WORLD);`` holds every rank until that call has returned, and only then
    does the rank of half 2 make its call (3.1.3 ``src/ml_optimiser_mpi.cpp:2064, 2179-2180,
    2216``; 4.0.0 ``:2035, 2139, 2171``; 5.0.0 ``:2447, 2555, 2587``). A hook that waits for the
    other half there waits for a call that cannot start. Measured with RELION 3.1.3 (``mpirun -n
    3``, a hook that sleeps 3 s): with the option the half-2 call started 10 ms after the half-1
    call returned; without it the two started 1 ms apart.

    The option is read from the command line of the running process only
    (``checkParameter(argc, argv, "--sequential_halves_recons")`` in both ``parseInitial`` and
    ``parseContinue``, 3.1.3 ``src/ml_optimiser.cpp:462, 796``): a run continued without it
    reconstructs the halves together again, and the non-MPI relion_refine, which never splits
    the halves (``ml_optimiser.cpp:2541``), ignores it. So the job's files (``note.txt``,
    ``job.star``, an optimiser.star written by an earlier run) are no evidence, and a call made
    by hand (no relion_refine above it) is never refused; :func:`sequential_hint` only adds
    them to the timeout message.
    """
    for pid, cmd in (ancestors if ancestors is not None else _ancestor_commands()):
        tokens = cmd.split()
        if any("relion_refine" in Path(tok).name for tok in tokens[:2]) and SEQUENTIAL_FLAG in tokens:
            return f"the command line of relion_refine (pid {pid})"
    return None


def sequential_hint(name: HookName, job_dir: Path) -> str | None:
    """A file of the job that mentions ``--sequential_halves_recons`` (for the timeout message), or None.

    The previous iteration's optimiser.star header (relion_refine writes its command line
    there), then the job's ``note.txt`` and ``job.star``.
    """
    opt = _previous(name, "_optimiser.star")
    if opt.is_file():
        try:
            with open(opt, encoding="utf-8", errors="replace") as fh:
                head = "".join(fh.readline() for _ in range(4))
        except OSError:
            head = ""
        if SEQUENTIAL_FLAG in head:
            return str(opt)
    for extra in (job_dir / "note.txt", job_dir / "job.star"):
        try:
            if extra.is_file() and SEQUENTIAL_FLAG in extra.read_text(errors="replace"):
                return str(extra)
        except OSError:
            continue
    return None


def build_request(star_path: str, *, pixel_size_angstrom: float | None = None, mask: str | None = None,
                  final_mode: str = "plain", timeout_s: float = 1800.0, params: FilterParams | None = None,
                  workers: int | None = None, backend: str | None = None, device: str = "cpu") -> ExtRecRequest:
    """Read the hook's STAR file and the job's metadata into an :class:`ExtRecRequest`.

    Pixel size: option, else ``rlnPixelSize`` of the hook STAR (4.0+), else the previous
    iteration's model.star, else the mask header, else 1 Å (local resolution then in voxels).
    Mask: option, else the previous optimiser.star's ``rlnSolventMaskName``, else job.star's
    ``fn_mask``, else none.

    Raises
    ------
    InputFileError
        Bad STAR file, bad options.
    """
    name = parse_hook_name(star_path)
    star = read_external_reconstruct_star(star_path)
    if final_mode not in ("plain", "filter"):
        raise InputFileError(f"--final must be 'plain' or 'filter', got {final_mode!r}")
    if not (timeout_s > 0):
        raise InputFileError(f"--timeout must be > 0 seconds, got {timeout_s}")
    job_dir = Path(star_path).parent
    notes: list[str] = []
    split = _previous(name, "_half1_model.star").is_file()
    half_tag = f"_half{name.half}" if name.half else ("_half1" if split else "")
    model = _try(lambda: read_model_general(_previous(name, f"{half_tag}_model.star")), notes, "model.star")
    opt = _try(lambda: read_optimiser_general(_previous(name, "_optimiser.star")), notes, "optimiser.star")
    symmetry = _try(lambda: read_sampling_symmetry(_previous(name, "_sampling.star")), notes, "sampling.star")
    job = None
    if (job_dir / "job.star").is_file():
        job = _try(lambda: read_job_options(job_dir / "job.star"), notes, "job.star")
    mask_path, mask_src = mask, "--mask"
    if mask_path is None and opt and (named := solvent_mask_name(opt[0])) is not None:
        mask_path, mask_src = named, "optimiser.star rlnSolventMaskName"
    if mask_path is None and job and job.get("fn_mask"):
        mask_path, mask_src = job["fn_mask"], "job.star fn_mask"
    if mask_path is not None:
        notes.append(f"mask {mask_path} (from {mask_src})")
    pixel, source = pixel_size_angstrom, "--pixel-size"
    if pixel is None and star.pixel_size_angstrom:
        pixel, source = star.pixel_size_angstrom, "rlnPixelSize of the hook STAR file"
    if pixel is None and model and _positive(model.get("rlnPixelSize")):
        pixel, source = float(model["rlnPixelSize"]), "previous model.star"
    if pixel is None:
        pixel, source = 1.0, "unknown (1 Å assumed: local resolution in voxels)"
    if not pixel > 0:
        raise InputFileError(f"--pixel-size must be > 0 Å, got {pixel}")
    return ExtRecRequest(star=star, name=name, job_dir=job_dir, pixel_size_angstrom=float(pixel),
                         pixel_size_source=source, mask_path=mask_path, symmetry=symmetry,
                         sequential=detect_sequential(name, job_dir) if name.half else None,
                         final_mode=final_mode, timeout_s=float(timeout_s), params=params or FilterParams(),
                         workers=workers, backend=backend, device=device, notes=tuple(notes))


def _positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


# -- rendezvous ------------------------------------------------------------------------------

def _stamp(path: str | Path) -> dict[str, int]:
    st = os.stat(path)
    return {"mtime_ns": st.st_mtime_ns, "size": st.st_size}


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
                 watch_pid: int | None = None) -> None:
        if name.half is None:
            raise ValueError("a rendezvous needs a half-set call")
        self.half = name.half
        self.other = 3 - name.half
        self.folder = job_dir / RENDEZVOUS_DIR / name.pair_key
        self.name = name
        self.own_data = data_real
        self.partner_data = partner_path(data_real, name.half)
        self.timeout_s = timeout_s
        self.watch_pid = watch_pid
        self.started_unix = _call_started_unix()
        #: a file of the job that mentions --sequential_halves_recons (named in the timeout message)
        self.sequential_hint: str | None = None

    def _files(self, half: int) -> tuple[Path, Path, Path]:
        return (self.folder / f"half{half}.mrc", self.folder / f"half{half}.json",
                self.folder / f"half{half}.failed")

    def _record(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {"half": self.half, "iteration": self.name.iteration, "data_real": self.own_data,
                "data_real_stamp": _stamp(self.own_data), "mpi_job": _mpi_job_id(), "pid": os.getpid(),
                "host": socket.gethostname(), "call_started_unix": self.started_unix, "written_unix": time.time(),
                **extra}

    def begin(self) -> None:
        """Create the folder and clear this half's own record and failure marker of an earlier run."""
        from locband.io.atomic import ensure_output_dir

        ensure_output_dir(self.folder)
        for f in self._files(self.half)[1:]:
            f.unlink(missing_ok=True)

    def publish(self, volume: npt.NDArray[np.float32], *, pixel_size_angstrom: float) -> None:
        """Write this half's map, then its record (both atomically)."""
        from locband.io.atomic import atomic_write_text
        from locband.io.mrc import write_map

        mrc, rec, _ = self._files(self.half)
        write_map(mrc, volume, pixel_size_angstrom=pixel_size_angstrom)
        atomic_write_text(rec, json.dumps(self._record({"map_stamp": _stamp(mrc)})) + "\n")

    def fail(self, reason: str) -> None:
        """Tell the other half that this one failed (best effort)."""
        from locband.io.atomic import atomic_write_text

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self._files(self.half)[2], json.dumps(self._record({"reason": reason})) + "\n")
        except (OSError, InputFileError):
            pass

    def _current(self, path: Path) -> dict[str, Any] | None:
        """The partner's record at ``path`` if it belongs to this run, else None."""
        try:
            rec = json.loads(path.read_text())
            now = _stamp(self.partner_data)
            own = _stamp(self.own_data)
        except (OSError, ValueError):
            return None
        if not isinstance(rec, dict) or rec.get("half") != self.other:
            return None
        if not _same_file(str(rec.get("data_real")), self.partner_data) or rec.get("data_real_stamp") != now:
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

    def wait_for_partner(self) -> npt.NDArray[np.float32]:
        """Block until the other half's current map is there; return it.

        Raises
        ------
        RendezvousError
            The other half failed, relion_refine exited, or ``timeout_s`` passed.
        """
        from locband.io.mrc import read_map

        mrc, rec_path, failed = self._files(self.other)
        t0 = time.monotonic()
        sleep = 0.01
        while True:
            bad = self._current(failed)
            if bad is not None and self._failure_counts(bad):
                when = ""
                if float(bad.get("written_unix") or 0) < self.started_unix:
                    stamp = time.strftime("%H:%M:%S", time.localtime(float(bad.get("written_unix") or 0)))
                    when = f" (at {stamp}, before this call started, and no new call of half {self.other} came)"
                raise RendezvousError(f"half {self.other} of iteration {self.name.iteration} failed{when}: "
                                      f"{bad.get('reason', 'no reason given')}")
            rec = self._current(rec_path)
            if rec is not None:
                try:
                    if _stamp(mrc) == rec.get("map_stamp"):
                        return read_map(mrc, what=f"half-{self.other} map").data
                except (OSError, InputFileError):
                    pass  # replaced while we read it: look again
            waited = time.monotonic() - t0
            if waited > self.timeout_s:
                raise RendezvousError(
                    f"timed out after {self.timeout_s:g} s waiting for half {self.other} of iteration "
                    f"{self.name.iteration}: no current {str(rec_path)!r} (written by the half-{self.other} call "
                    f"for {self.partner_data!r}). Both half-set calls must run at the same time: use "
                    "relion_refine_mpi with split halves and at least 3 MPI processes, without "
                    f"{SEQUENTIAL_FLAG}, and pass RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE to every rank "
                    "(mpirun -x); or raise --timeout"
                    + (f" ({self.sequential_hint} mentions {SEQUENTIAL_FLAG})" if self.sequential_hint else ""))
            if self.watch_pid is not None and not _alive(self.watch_pid):
                raise RendezvousError(f"relion_refine (pid {self.watch_pid}) has exited while half {self.half} "
                                      f"was waiting for half {self.other}; giving up")
            time.sleep(sleep)
            sleep = min(sleep * 1.5, 0.1)

    def clean_older(self) -> None:
        """Remove this half's files of earlier iterations (the other half has long read them)."""
        base = self.folder.parent
        stem = Path(self.name.out_root).name
        suffix = f"_{self.name.kind}{self.name.index:03d}"
        for folder in base.glob(f"{stem}_it*{suffix}"):
            try:
                it = int(folder.name[len(stem) + 3: -len(suffix)])
            except ValueError:
                continue
            if it >= self.name.iteration - 1:
                continue  # keep the previous pair: the final joined call may use it
            for f in self._files(self.half):
                (folder / f.name).unlink(missing_ok=True)
            try:
                folder.rmdir()
            except OSError:
                pass


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
    if Path(data_real).is_file():
        Rendezvous(Path(star_path).parent, name, data_real, timeout_s=1.0).fail(reason)


def _same_file(a: str, b: str) -> bool:
    """Same path once made absolute (RELION's paths are relative to the project folder)."""
    return os.path.realpath(a) == os.path.realpath(b)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the call --------------------------------------------------------------------------------

def _load_mask(req: ExtRecRequest) -> npt.NDArray[np.float32] | None:
    from locband.io.mrc import read_map

    if req.mask_path is None:
        return None
    m = read_map(req.mask_path, what="mask").data
    n = req.star.ori_size
    if m.shape != (n, n, n):
        raise InputFileError(f"mask {req.mask_path!r} has shape {m.shape}, but the references are {n}^3 voxels")
    return m


def _workers(req: ExtRecRequest) -> int:
    """The request's threads, or the idle cores shared by the calls that run at the same time."""
    from locband._threads import default_threads

    if req.workers is not None:
        return req.workers
    return default_threads(concurrent=2 if req.case == "half" else 1)


def _reconstruct(req: ExtRecRequest, *, regularised: bool) -> npt.NDArray[np.float32]:
    from locband.engine.reconstruct import reconstruct_from_sums

    data, weight = read_fourier_sums(req.star)
    s = req.star
    return reconstruct_from_sums(data, weight, ori_size=s.ori_size, padding_factor=s.padding_factor,
                                 current_size=s.current_size, tau2=s.tau2 if regularised else None,
                                 tau2_fudge=s.tau2_fudge, workers=_workers(req), backend=req.backend)


def _filter(req: ExtRecRequest, h1: npt.NDArray[np.float32], h2: npt.NDArray[np.float32]) -> FilterResult:
    from locband.engine.local import LocalFilter

    lf = LocalFilter(h1.shape, pixel_size_angstrom=req.pixel_size_angstrom, mask=_load_mask(req),
                     params=req.params, workers=_workers(req), backend=req.backend, device=req.device)
    return lf(h1, h2)


def _previous_pair(req: ExtRecRequest) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    from locband.io.mrc import read_map

    key = f"{Path(req.name.out_root).name}_it{req.name.iteration - 1:03d}_{req.name.kind}{req.name.index:03d}"
    folder = req.job_dir / RENDEZVOUS_DIR / key
    maps = []
    for h in (1, 2):
        path = folder / f"half{h}.mrc"
        if not path.is_file():
            raise InputFileError(f"--final filter needs the unregularised half maps of iteration "
                                 f"{req.name.iteration - 1}, but {str(path)!r} does not exist (was the hook active "
                                 "in the previous iteration?); use --final plain")
        maps.append(read_map(path, what=f"half-{h} map of iteration {req.name.iteration - 1}").data)
    return maps[0], maps[1]


def _write_result(req: ExtRecRequest, vol: npt.NDArray[np.float32]) -> None:
    from locband.io.mrc import write_map

    n = req.star.ori_size
    if vol.shape != (n, n, n):  # pragma: no cover - guarded by construction
        raise ValueError(f"result has shape {vol.shape}, expected {(n, n, n)}")
    write_map(req.star.result, vol, pixel_size_angstrom=req.pixel_size_angstrom)


def _summary(req: ExtRecRequest, result: FilterResult | None, seconds: float, mode: str) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "time_unix": time.time(), "star": req.star.path, "iteration": req.name.iteration, "half": req.name.half,
        req.name.kind: req.name.index, "case": req.case, "mode": mode, "result": req.star.result,
        "ori_size": req.star.ori_size, "current_size": req.star.current_size,
        "pixel_size_angstrom": req.pixel_size_angstrom, "pixel_size_source": req.pixel_size_source,
        "mask": req.mask_path, "symmetry": req.symmetry, "seconds": round(seconds, 3),
        "process_seconds": _process_seconds(), "notes": list(req.notes),
    }
    if result is not None:
        res = result.local_resolution_angstrom
        rec.update({"n_bands": result.bands.n_bands,
                    "local_resolution_angstrom": {"min": float(res.min()), "p5": float(np.percentile(res, 5)),
                                                  "median": float(np.median(res)),
                                                  "p95": float(np.percentile(res, 95)), "max": float(res.max())},
                    # None: FSC below 0.143 from the first shell on; "fsc_0143_crossing" says whether a
                    # value is a crossing or the last shell as a bound (FSCCurve.crossing_status)
                    **_fsc_fields(result, req),
                    "params": result.params.to_dict(), "timings": result.timings})
    return rec


def _call_started_unix() -> float:
    """When this process started (Unix time), else now."""
    age = _process_seconds()
    return time.time() - (age or 0.0)


def _process_seconds() -> float | None:
    """Wall time since this process started (Linux /proc), start-up and imports included."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return None


def _fsc_fields(result: FilterResult, req: ExtRecRequest) -> dict[str, Any]:
    from locband.engine.units import fsc_resolution_angstrom

    out: dict[str, Any] = {}
    for which, curve in (("unmasked", result.fsc_unmasked), ("masked", result.fsc_masked)):
        value, status = (None, None) if curve is None else fsc_resolution_angstrom(
            curve, 0.143, pixel_size_angstrom=req.pixel_size_angstrom)
        out[f"fsc_0143_angstrom_{which}"] = value
        out[f"fsc_0143_crossing_{which}"] = status
    return out


def _line(req: ExtRecRequest, rec: dict[str, Any]) -> str:
    who = f"it{req.name.iteration:03d}"
    who += f" half{req.name.half}" if req.name.half else ""
    who += f" {req.name.kind}{req.name.index:03d}" if (req.name.kind == "body" or req.name.index > 1) else ""
    secs = f"{rec['seconds']:.1f} s"
    if rec.get("process_seconds") is not None:
        secs += f" ({rec['process_seconds']:.1f} s with start-up)"
    if "n_bands" in rec:
        lr = rec["local_resolution_angstrom"]
        return (f"locband: {who}: {rec['n_bands']} bands, local resolution {lr['p5']:.1f}-{lr['p95']:.1f} Å "
                f"(5-95 %), {secs}")
    return f"locband: {who}: {rec['mode']}, {secs}"


def append_log(job_dir: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``<job>/locband_extrec.jsonl`` (one ``write`` on an O_APPEND file)."""
    line = (json.dumps(record, default=float) + "\n").encode()
    fd = os.open(job_dir / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def check_outputs(req: ExtRecRequest) -> None:
    """Refuse a call whose result (or feedback STAR file) would replace one of its inputs.

    ``rlnExtReconsResult`` is replaced and ``rlnExtReconsResultStarfile`` removed by every call;
    a STAR file written by hand may point either at the STAR file itself, the arrays or the mask.

    Raises
    ------
    InputFileError
        The output and the input it would replace, both named.
    """
    from locband.io.outputs import same_file

    s = req.star
    inputs = {"hook STAR file": s.path, "data array (real part)": s.data_real,
              "data array (imaginary part)": s.data_imag, "weight array": s.weight, "mask": req.mask_path}
    for label, target in (("rlnExtReconsResult", s.result), ("rlnExtReconsResultStarfile", s.result_star)):
        for what, path in inputs.items():
            if path and target and same_file(target, path):
                raise InputFileError(f"{label} {target!r} in {s.path!r} is the {what} {path!r}: locband never "
                                     "writes over its inputs")


def run(req: ExtRecRequest, *, print_line: Callable[[str], None] = print) -> dict[str, Any]:
    """Carry out one hook call: reconstruct, meet the other half, filter, write the result.

    Returns
    -------
    dict
        The JSON record also appended to the job's log.

    Raises
    ------
    InputFileError
        Bad input, a failed or missing other half, ``--sequential_halves_recons``.
    """
    t0 = time.perf_counter()
    try:
        check_outputs(req)
    except InputFileError as exc:  # the other half must not wait for us in vain
        if req.name.half is not None and Path(req.star.data_real).is_file():
            Rendezvous(req.job_dir, req.name, req.star.data_real, timeout_s=1.0).fail(f"{type(exc).__name__}: {exc}")
        raise
    Path(req.star.result).unlink(missing_ok=True)  # never leave an older map for RELION to read
    stale_out = Path(req.star.result_star)
    if stale_out.exists():  # RELION would read it as FSC/tau2 feedback: not ours, so not honest
        stale_out.unlink()
        print_line(f"locband: removed {stale_out} left by another program (locband never rewrites RELION's FSC)")
    result: FilterResult | None = None
    if req.case == "half":
        result, vol, mode = _run_half(req)
    elif req.case == "final" and req.final_mode == "filter":
        result = _filter(req, *_previous_pair(req))
        vol, mode = result.full, f"final: local filter of the iteration-{req.name.iteration - 1} halves"
    else:
        vol = _reconstruct(req, regularised=True)
        mode = ("final: RELION's plain MAP reconstruction" if req.case == "final" else
                "no second half (classification or non-split run): plain MAP reconstruction")
    _write_result(req, vol)
    rec = _summary(req, result, time.perf_counter() - t0, mode)
    append_log(req.job_dir, rec)
    print_line(_line(req, rec))
    return rec


def _run_half(req: ExtRecRequest) -> tuple[FilterResult, npt.NDArray[np.float32], str]:
    assert req.name.half is not None
    if req.sequential:
        raise RendezvousError(
            f"relion_refine runs with {SEQUENTIAL_FLAG} (seen in {req.sequential}): the two half-set "
            "reconstructions then never run at the same time, so locband cannot filter them jointly. "
            f"Remove {SEQUENTIAL_FLAG} (it only saves memory), or unset RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE")
    ancestor = relion_ancestor()
    rv = Rendezvous(req.job_dir, req.name, req.star.data_real, timeout_s=req.timeout_s,
                    watch_pid=ancestor[0] if ancestor else None)
    rv.sequential_hint = sequential_hint(req.name, req.job_dir)
    rv.begin()
    try:
        own = _reconstruct(req, regularised=False)
        rv.publish(own, pixel_size_angstrom=req.pixel_size_angstrom)
        other = rv.wait_for_partner()
        pair = (own, other) if req.name.half == 1 else (other, own)
        result = _filter(req, *pair)
    except BaseException as exc:
        rv.fail(f"{type(exc).__name__}: {exc}")
        raise
    rv.clean_older()
    vol = result.half1 if req.name.half == 1 else result.half2
    return result, vol, "half: joint local filter"
