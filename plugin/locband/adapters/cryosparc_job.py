"""cryoSPARC adapter: an External job around the engine, an offline mode, and a refinement loop.

Three entry points, all through the official ``cryosparc-tools`` client (an optional extra,
imported inside the functions):

* :func:`run_filter_job` (online): reads a refinement's ``volume`` output, creates an External
  job connected to it, filters the half-maps, uploads filtered map, filtered halves and local
  resolution into the External job's folder and only then saves a ``volume`` output whose slot
  dtypes copy the source output's. Every input check runs *before* the job is created, so bad
  input leaves nothing in the project; a failure after that marks the job failed with the
  reason (``with job.run()``).
* :func:`filter_offline`: the same outputs from a job folder (or its volume ``.cs``), written
  all-or-nothing into a new folder with a volume ``.cs`` and ``.csg`` for *Import Result Group*.
* :func:`run_loop`: refinement -> filter -> local refinement seeded with the filtered volume ->
  filter ..., recorded step by step in a JSON state file so that a re-run resumes.

Credentials come from the environment (``CRYOSPARC_BASE_URL`` or ``CRYOSPARC_MASTER_HOSTNAME`` +
``CRYOSPARC_BASE_PORT``, ``CRYOSPARC_EMAIL``, ``CRYOSPARC_PASSWORD``) or from the token saved by
``python -m cryosparc.tools login``; never from the command line. A URL with a user name or
password in it is refused, with the credentials blanked out of the message.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locband import __version__
from locband._secrets import redact, url_credentials, url_without_credentials
from locband._threads import default_threads
from locband.engine.local import LocalFilter
from locband.engine.params import FilterParams, FilterResult
from locband.io.cs import (
    VolumeRecord,
    VolumeSlot,
    csg_text,
    find_volume_cs,
    read_volume_cs,
    record_from_dataset,
    require_cryosparc,
    write_volume_cs,
)
from locband.io.errors import InputFileError
from locband.io.mrc import MapData, write_map
from locband.io.outputs import OutputSet
from locband.io.summary import read_json, write_json
from locband.pipeline import OUTPUT_NAMES, fsc_text, load_inputs, naming_engine_errors, summarise

__all__ = ["HALF_SLOTS", "OUTPUT_SLOTS", "CryosparcJobError", "FilterRequest", "LoopRequest", "check_volume_record",
           "choose_mask_slot", "output_slot_specs", "build_output_fields", "connect", "disconnect", "filter_offline",
           "run_filter_job", "run_loop", "loop_decision"]

Progress = Callable[[float, str], None]

HALF_SLOTS = ("map_half_A", "map_half_B")
#: output slot -> FilterResult attribute
OUTPUT_SLOTS = {"map": "full", "map_half_A": "half1", "map_half_B": "half2", "map_locres": "local_resolution_angstrom"}
#: output slot -> pipeline output kind (file names of the offline folder)
_SLOT_KIND = {"map": "full", "map_half_A": "half1", "map_half_B": "half2", "map_locres": "local_resolution"}
MASK_SLOTS_AUTO = ("mask_fsc", "mask_refine")
OUTPUT_NAME = "filtered_volume"
INPUT_NAME = "input_volume"
DEFAULT_SLOT_DTYPE = "blob"
CS_NAME = "locband_volume.cs"
CSG_NAME = "locband_volume.csg"
_PIXEL_TOLERANCE = 1e-3  # relative: .cs psize_A is float32, headers are rounded by other programs
_DONE = ("completed",)
_STOPPED = ("failed", "killed")


class CryosparcJobError(InputFileError):
    """A cryoSPARC object is missing or unusable, or a queued job failed (exit 1, one line)."""


@dataclass(frozen=True)
class FilterRequest:
    """What ``locband cryosparc filter`` was asked to do (pure data, built from argv)."""

    project: str
    workspace: str
    job: str
    output: str = "volume"
    mask_slot: str = "auto"
    params: FilterParams = field(default_factory=FilterParams)
    workers: int | None = None  # None: the idle cores (locband._threads)
    backend: str | None = None
    device: str = "cpu"
    title: str = "locband local filter"


@dataclass(frozen=True)
class LoopRequest:
    """What ``locband cryosparc loop`` was asked to do (pure data, built from argv)."""

    filter: FilterRequest
    refine_type: str = "new_local_refine"
    refine_params: dict[str, Any] = field(default_factory=dict)
    max_rounds: int = 3
    min_improvement_angstrom: float = 0.05
    lane: str | None = None
    poll_seconds: float = 5.0
    timeout_seconds: float | None = None


# -- pure translation -----------------------------------------------------------------------
def choose_mask_slot(available: set[str] | dict[str, Any], mask_slot: str) -> str | None:
    """Which slot to use as the mask: ``auto`` = mask_fsc, else mask_refine, else none."""
    if mask_slot == "none":
        return None
    if mask_slot == "auto":
        return next((s for s in MASK_SLOTS_AUTO if s in available), None)
    if mask_slot not in available:
        raise CryosparcJobError(f"--mask-slot {mask_slot!r} is not a slot of the volume output; it has "
                                f"{sorted(available)}")
    return mask_slot


def check_volume_record(record: VolumeRecord) -> float:
    """Check that a volume row has both half-maps with one shape and voxel size; return the voxel size."""
    missing = [s for s in HALF_SLOTS if s not in record.slots]
    if missing:
        raise CryosparcJobError(f"volume {record.source!r} has no half maps: slots {missing} are missing "
                                f"(found {sorted(record.slots)}); use the volume output of a refinement")
    a, b = (record.slots[s] for s in HALF_SLOTS)
    if a.shape and b.shape and tuple(a.shape) != tuple(b.shape):
        raise CryosparcJobError(f"volume {record.source!r}: map_half_A has shape {a.shape} but map_half_B has {b.shape}")
    pa, pb = a.pixel_size_angstrom, b.pixel_size_angstrom
    if pa > 0 and pb > 0 and not math.isclose(pa, pb, rel_tol=_PIXEL_TOLERANCE):
        raise CryosparcJobError(f"volume {record.source!r}: pixel sizes disagree: map_half_A/psize_A = {pa:.4f} Å, "
                                f"map_half_B/psize_A = {pb:.4f} Å")
    return pa


def output_slot_specs(source_dtypes: dict[str, str]) -> list[dict[str, str]]:
    """Slots of the new ``volume`` output; dtypes copied from the source output's results.

    ``map_locres`` (not in a refinement's output) takes the dtype of the source's ``map``.
    """
    fallback = source_dtypes.get("map", DEFAULT_SLOT_DTYPE)
    return [{"name": s, "dtype": source_dtypes.get(s, fallback)} for s in OUTPUT_SLOTS]


def build_output_fields(paths: dict[str, str], *, shape: tuple[int, ...],
                        pixel_size_angstrom: float) -> dict[str, list[Any]]:
    """Field values of the one-row output dataset: ``<slot>/path``, ``/shape``, ``/psize_A``."""
    out: dict[str, list[Any]] = {}
    for slot, path in paths.items():
        out[f"{slot}/path"] = [path]
        out[f"{slot}/shape"] = [list(shape)]
        out[f"{slot}/psize_A"] = [float(pixel_size_angstrom)]
    return out


def loop_decision(resolutions: list[float], *, max_rounds: int, min_improvement_angstrom: float) -> str | None:
    """Why the loop stops now, or None to go on.

    ``resolutions[0]`` is the starting refinement's, ``resolutions[k]`` that of round k.
    """
    rounds = len(resolutions) - 1
    if rounds >= 1:
        best_before = min(resolutions[:-1])
        if resolutions[-1] > best_before - min_improvement_angstrom:
            return (f"resolution stopped improving: round {rounds} reached {resolutions[-1]:.3f} Å, best before "
                    f"{best_before:.3f} Å (needed {min_improvement_angstrom:g} Å better)")
    if rounds >= max_rounds:
        return f"reached the maximum of {max_rounds} rounds"
    return None


# -- shared engine call -----------------------------------------------------------------------
def _filter_maps(m1: MapData, m2: MapData, mk: MapData | None, px: float, req: FilterRequest,
                 progress: Progress | None) -> FilterResult:
    lf = LocalFilter(m1.data.shape, pixel_size_angstrom=px, mask=None if mk is None else mk.data,
                     params=req.params, workers=req.workers if req.workers is not None else default_threads(),
                     backend=req.backend, device=req.device)
    with naming_engine_errors(m1.path, m2.path):
        return lf(m1.data, m2.data, progress=progress)


def _check_against_record(record: VolumeRecord, m1: MapData, px_header: float) -> None:
    pa = record.slots["map_half_A"].pixel_size_angstrom
    if pa > 0 and not math.isclose(pa, px_header, rel_tol=_PIXEL_TOLERANCE):
        raise CryosparcJobError(f"pixel sizes disagree: {record.source!r} says map_half_A/psize_A = {pa:.4f} Å but "
                                f"the header of {m1.path!r} says {px_header:.4f} Å")


# -- offline ----------------------------------------------------------------------------------
def filter_offline(source: Path, out_dir: Path, *, project_dir: Path | None = None, mask_slot: str = "auto",
                   params: FilterParams | None = None, workers: int | None = None, backend: str | None = None,
                   device: str = "cpu", progress: Progress | None = None) -> dict[str, Any]:
    """Filter the half-maps of a cryoSPARC job folder (or volume ``.cs``) into a new folder.

    Parameters
    ----------
    source : Path
        A refinement's job folder (``<project>/J42``) or its volume ``.cs`` file.
    out_dir : Path
        Output folder: the maps of ``locband filter`` plus ``locband_volume.cs`` / ``.csg``.
    project_dir : Path, optional
        Folder the ``.cs`` paths are relative to (default: the parent of the job folder).
    mask_slot : str
        ``auto``, ``none`` or a slot name.
    params, workers, backend, device, progress
        Engine settings, as for :func:`locband.local_filter` (``workers=None``: the idle cores).

    Returns
    -------
    dict
        The summary written to ``summary.json`` (with ``cryosparc`` details).

    Raises
    ------
    InputFileError
        Missing folder, file or slot, a volume without half maps, disagreeing pixel sizes.
    """
    cs_path = find_volume_cs(source) if Path(source).is_dir() else Path(source)
    record = read_volume_cs(cs_path)
    check_volume_record(record)
    proj = Path(project_dir) if project_dir is not None else cs_path.resolve().parent.parent
    mslot = choose_mask_slot(record.slots, mask_slot)

    def local(slot: str) -> Path:
        p = Path(record.slots[slot].path)
        p = p if p.is_absolute() else proj / p
        if not p.is_file():
            raise CryosparcJobError(f"{slot} of {str(cs_path)!r} points to {str(p)!r}, which does not exist "
                                    f"(paths are taken relative to the project folder {str(proj)!r}; "
                                    "set it with --project-dir)")
        return p

    paths = {s: local(s) for s in HALF_SLOTS + ((mslot,) if mslot else ())}
    # before any work: no output may be one of the inputs, no output name may be taken by a folder
    outs = OutputSet(out_dir, inputs={"volume .cs file": cs_path, "map_half_A": paths["map_half_A"],
                                      "map_half_B": paths["map_half_B"], "mask": paths.get(mslot) if mslot else None},
                     owned=[*(OUTPUT_NAMES[kind] for kind in _SLOT_KIND.values()), OUTPUT_NAMES["summary"], CS_NAME,
                            CSG_NAME])
    outs.check()
    m1, m2, mk, px = load_inputs(paths["map_half_A"], paths["map_half_B"], paths.get(mslot) if mslot else None,
                                 pixel_size_angstrom=None)
    _check_against_record(record, m1, px)
    out = outs.create()  # only once the inputs are known to be good
    req = FilterRequest(project="", workspace="", job="", mask_slot=mask_slot, params=params or FilterParams(),
                        workers=workers, backend=backend, device=device)
    result = _filter_maps(m1, m2, mk, px, req, progress)
    summary = summarise(result, inputs={"half1": str(paths["map_half_A"]), "half2": str(paths["map_half_B"]),
                                        "mask": str(paths[mslot]) if mslot else None},
                        timings={}, mask=None if mk is None else mk.data)
    out_abs = out.resolve()
    try:
        rel_base: Path | None = out_abs.relative_to(proj.resolve())
    except ValueError:
        rel_base = None
    cs_slots = {slot: VolumeSlot(path=str((rel_base / OUTPUT_NAMES[kind]) if rel_base is not None
                                          else out_abs / OUTPUT_NAMES[kind]),
                                 shape=result.full.shape, pixel_size_angstrom=px)
                for slot, kind in _SLOT_KIND.items()}
    summary["cryosparc"] = {"source": str(cs_path), "project_dir": str(proj), "mask_slot": mslot,
                            "volume_cs": str(out / CS_NAME), "group_csg": str(out / CSG_NAME),
                            "paths_relative_to_project": rel_base is not None}
    for slot, kind in _SLOT_KIND.items():
        vol = getattr(result, OUTPUT_SLOTS[slot])
        outs.add(OUTPUT_NAMES[kind], lambda p, v=vol: write_map(p, v, pixel_size_angstrom=px, origin=m1.origin))
    outs.add(CS_NAME, lambda p: write_volume_cs(p, cs_slots))
    csg = csg_text(group_name=OUTPUT_NAME, cs_name=CS_NAME, slots={s: DEFAULT_SLOT_DTYPE for s in cs_slots},
                   title="locband filtered volume", version=__version__)
    outs.add(CSG_NAME, lambda p: p.write_text(csg, encoding="utf-8"))
    summary["run_id"] = outs.run_id
    summary["outputs"] = {kind: str(out / OUTPUT_NAMES[kind]) for kind in _SLOT_KIND.values()}
    summary["outputs"].update(summary=str(out / OUTPUT_NAMES["summary"]), volume_cs=str(out / CS_NAME),
                              group_csg=str(out / CSG_NAME))
    outs.add(OUTPUT_NAMES["summary"], lambda p: write_json(p, summary))
    outs.commit()
    return summary


# -- online -----------------------------------------------------------------------------------
def connect(url: str | None = None) -> Any:
    """A ``cryosparc.tools.CryoSPARC`` session from the environment or the saved login.

    Raises
    ------
    InputFileError
        cryosparc-tools missing or 4.x, no address, no credentials, or the server refuses.
    """
    cryosparc = require_cryosparc("cryosparc")
    major = int(str(getattr(cryosparc, "__version__", "0")).split(".")[0] or 0)
    if major < 5:
        raise InputFileError(f"cryosparc-tools {cryosparc.__version__} is installed; the online cryoSPARC commands "
                             "need the 5.x client for a cryoSPARC 5 server (pip install 'cryosparc-tools~=5.0.0'). "
                             "For a 4.x server use 'locband cryosparc offline' (see the README)")
    tools = require_cryosparc("cryosparc.tools")
    base_url = url or os.environ.get("CRYOSPARC_BASE_URL") or None
    host = os.environ.get("CRYOSPARC_MASTER_HOSTNAME") or None
    port = os.environ.get("CRYOSPARC_BASE_PORT") or None
    auth = {"email": os.environ.get("CRYOSPARC_EMAIL") or None, "password": os.environ.get("CRYOSPARC_PASSWORD") or None}
    if not base_url and not host and not port:
        raise InputFileError("no cryoSPARC address: set CRYOSPARC_BASE_URL (e.g. http://host:39000) or "
                             "CRYOSPARC_MASTER_HOSTNAME and CRYOSPARC_BASE_PORT, or give --url")
    if base_url and url_credentials(base_url):  # refused, and never echoed: the message shows *** instead
        where = "--url" if url else "CRYOSPARC_BASE_URL"
        raise InputFileError(f"{where} must not hold a user name or password ({url_without_credentials(base_url)}): "
                             "set CRYOSPARC_EMAIL and CRYOSPARC_PASSWORD, or log in once with "
                             "'python -m cryosparc.tools login'")
    try:
        if base_url:
            return tools.CryoSPARC(base_url, host=None, base_port=None, **auth)
        return tools.CryoSPARC(None, host=host, base_port=port, **auth)
    except (ValueError, RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = redact(first, [v for v in auth.values() if v and v != auth["email"]])
        raise InputFileError(f"cannot connect to cryoSPARC ({base_url or f'{host}:{port}'}): {first}; credentials "
                             "come from CRYOSPARC_EMAIL + CRYOSPARC_PASSWORD or 'python -m cryosparc.tools login'") from None


def disconnect(cs: Any) -> None:
    """Close the session's HTTP connections (the client otherwise leaves them to the garbage collector)."""
    client = getattr(getattr(cs, "api", None), "_client", None)
    if client is not None:
        client.close()


def _api_call(what: str, fn: Callable[[], Any]) -> Any:
    errors = require_cryosparc("cryosparc.errors")
    try:
        return fn()
    except errors.APIError as exc:
        if getattr(exc, "code", None) == 404:
            raise CryosparcJobError(f"{what} does not exist") from None
        raise CryosparcJobError(f"{what}: cryoSPARC refused: {exc}") from None


class _JobLog:
    """Engine progress -> one live-updating line of the job's event log."""

    def __init__(self, job: Any, *, step: float = 0.1) -> None:
        self.job, self.step, self.last = job, step, -1.0

    def __call__(self, fraction: float, message: str) -> None:
        if fraction >= 1.0 or fraction - self.last >= self.step:
            self.last = fraction
            self.job.log(f"locband: {fraction * 100:3.0f}% {message}", name="progress")


def _fetch(project: Any, project_dir: str, rel: str, tmp: Path, what: str) -> tuple[Path, bool]:
    """Local path of a project file: read in place where visible, else downloaded into ``tmp``."""
    p = Path(rel)
    local = p if p.is_absolute() else Path(project_dir) / p
    if local.is_file():
        return local, False
    target = tmp / f"{what}_{p.name}"
    _api_call(f"file {rel!r} of project {project.uid}", lambda: project.download_file(rel, target=str(target)))
    return target, True


def run_filter_job(cs: Any, req: FilterRequest, *, progress: Progress | None = None) -> dict[str, Any]:
    """Filter a refinement's half-maps in a new External job (see the module docstring).

    Returns
    -------
    dict
        ``external_job``, ``output``, ``source``, FSC resolution, whether files were downloaded.

    Raises
    ------
    CryosparcJobError
        Missing project, job, output or slot; a volume without half maps; disagreeing pixel sizes
        (all raised before anything is created in the project).
    Exception
        Whatever failed after the External job was created; the job is then marked failed.
    """
    project = _api_call(f"project {req.project}", lambda: cs.find_project(req.project))
    src = _api_call(f"job {req.job} in project {req.project}", lambda: cs.find_job(req.project, req.job))
    outputs = src.outputs
    if req.output not in outputs:
        raise CryosparcJobError(f"job {req.project} {req.job} has no output {req.output!r} (outputs: {sorted(outputs)})")
    out = outputs[req.output]
    if out.type != "volume":
        raise CryosparcJobError(f"output {req.output!r} of {req.project} {req.job} is of type {out.type!r}, expected "
                                "'volume'")
    dtypes = {r.name: r.dtype for r in out.results}
    missing = [s for s in HALF_SLOTS if s not in dtypes]
    if missing:
        raise CryosparcJobError(f"volume output {req.output!r} of {req.project} {req.job} has no half maps: slots "
                                f"{missing} are missing (found {sorted(dtypes)})")
    mslot = choose_mask_slot(dtypes, req.mask_slot)
    slots = list(HALF_SLOTS) + ([mslot] if mslot else [])
    dset = _api_call(f"output {req.output!r} of job {req.job}", lambda: src.load_output(req.output, slots=slots))
    record = record_from_dataset(dset, source=f"{req.project} {req.job} output {req.output}")
    check_volume_record(record)
    project_dir = str(project.dir)
    with tempfile.TemporaryDirectory(prefix="locband_cs_") as tmpname:
        tmp = Path(tmpname)
        fetched = {s: _fetch(project, project_dir, record.slots[s].path, tmp, s) for s in slots if s in record.slots}
        m1, m2, mk, px = load_inputs(fetched["map_half_A"][0], fetched["map_half_B"][0],
                                     fetched[mslot][0] if mslot and mslot in fetched else None, pixel_size_angstrom=None)
        _check_against_record(record, m1, px)
        # every input check has passed: only now does the project change
        ext = project.create_external_job(req.workspace, title=req.title,
                                          desc=f"locband {__version__}: local band-wise filter of {req.job} {req.output}")
        try:
            ext.connect(INPUT_NAME, req.job, req.output, slots=[{"name": s, "dtype": dtypes[s]} for s in slots])
            ext.add_output(type="volume", name=OUTPUT_NAME, slots=output_slot_specs(dtypes),
                           title="locband filtered volume")
        except Exception as exc:
            ext.stop(error=f"locband could not set up the job: {exc}")
            raise
        inputs = {"half1": f"{req.project}/{record.slots['map_half_A'].path}",
                  "half2": f"{req.project}/{record.slots['map_half_B'].path}",
                  "mask": f"{req.project}/{record.slots[mslot].path}" if mk is not None and mslot else None}
        summary = _run_in_job(ext, req, m1, m2, mk, px, tmp, mslot, inputs, progress)
    summary.update(external_job=ext.uid, output=OUTPUT_NAME, source=f"{req.project} {req.job} {req.output}",
                   downloaded=sorted(s for s, (_, dl) in fetched.items() if dl), mask_slot=mslot)
    return summary


def _upload(ext: Any, name: str, local: Path) -> None:
    with open(local, "rb") as fh:  # an open handle: the client does not close the files it opens itself
        ext.upload(name, fh)


def _run_in_job(ext: Any, req: FilterRequest, m1: MapData, m2: MapData, mk: MapData | None, px: float,
                tmp: Path, mslot: str | None, inputs: dict[str, str | None],
                progress: Progress | None) -> dict[str, Any]:
    log = _JobLog(ext)

    def both(fraction: float, message: str) -> None:
        log(fraction, message)
        if progress is not None:
            progress(fraction, message)

    with ext.run():
        ext.log(f"locband {__version__}: filtering {req.job} {req.output} ({'x'.join(map(str, m1.data.shape))} "
                f"voxels, {px:.4f} Å, mask {mslot or 'none'})")
        with warnings.catch_warnings(record=True) as caught:  # data-quality warnings go to the job's log too
            warnings.simplefilter("always")
            result = _filter_maps(m1, m2, mk, px, req, both)
        for w in caught:
            ext.log(f"locband: {w.message}", level="warning")
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        summary = summarise(result, inputs=inputs, timings={}, mask=None if mk is None else mk.data)
        names = {slot: f"{ext.uid}_locband_{slot}.mrc" for slot in OUTPUT_SLOTS}
        for slot, name in names.items():  # to the job's own folder; the output is saved only after all of them
            local = write_map(tmp / name, getattr(result, OUTPUT_SLOTS[slot]), pixel_size_angstrom=px, origin=m1.origin)
            _upload(ext, name, local)
        summary_name = f"{ext.uid}_locband_summary.json"
        _upload(ext, summary_name, write_json(tmp / summary_name, summary))
        dset = ext.alloc_output(OUTPUT_NAME, 1)
        for key, value in build_output_fields({s: f"{ext.uid}/{n}" for s, n in names.items()},
                                              shape=result.full.shape, pixel_size_angstrom=px).items():
            dset[key] = value
        ext.save_output(OUTPUT_NAME, dset)
        which = "unmasked" if summary["fsc"]["masked"] is None else "masked"
        ext.log(f"locband: done; FSC=0.143 {fsc_text(summary, which)} ({which}); output '{OUTPUT_NAME}' saved")
    return summary


# -- refinement loop --------------------------------------------------------------------------
def _resolution(job: Any, output: str) -> float:
    try:
        stats = job.outputs[output].latest_summary_stats
        return float(stats["fsc_info_best"]["radwn_final_A"])
    except (KeyError, TypeError, ValueError):
        raise CryosparcJobError(f"job {job.uid} has no resolution in outputs[{output!r}].latest_summary_stats"
                                "['fsc_info_best']['radwn_final_A']") from None


def _wait(job: Any, req: LoopRequest) -> None:
    t0 = time.monotonic()
    while True:
        job.refresh()
        if job.status in _DONE:
            return
        if job.status in _STOPPED:
            raise CryosparcJobError(f"refinement job {job.uid} ended with status {job.status!r}; fix it in cryoSPARC "
                                    "and run the same command again to resume")
        if job.status == "building":
            job.queue(req.lane)
        if req.timeout_seconds is not None and time.monotonic() - t0 > req.timeout_seconds:
            raise CryosparcJobError(f"refinement job {job.uid} still {job.status!r} after {req.timeout_seconds:g} s; "
                                    "run the same command again later to resume")
        time.sleep(req.poll_seconds)


def _new_state(req: LoopRequest) -> dict[str, Any]:
    f = req.filter
    return {"locband_version": __version__, "project": f.project, "workspace": f.workspace, "start_job": f.job,
            "refine_type": req.refine_type, "rounds": [], "current": None, "finished": False, "stop_reason": None}


def _load_state(path: Path, req: LoopRequest) -> dict[str, Any]:
    if not path.exists():
        return _new_state(req)
    try:
        state = read_json(path)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"loop state file {str(path)!r} is unreadable: {exc}") from None
    f = req.filter
    mine = {"project": f.project, "workspace": f.workspace, "start_job": f.job}
    theirs = {k: state.get(k) for k in mine}
    if theirs != mine:
        raise InputFileError(f"loop state file {str(path)!r} belongs to another loop ({theirs}, this one is {mine}); "
                             "give another --state file")
    return state


def run_loop(cs: Any, req: LoopRequest, state_path: Path, *,
             report: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Alternate filter and refinement until the resolution stops improving or ``max_rounds``.

    Each finished step is written to ``state_path`` (JSON, atomic) before the next starts; a
    re-run with the same state file resumes where the last one stopped, waiting for a queued
    refinement rather than queueing it again.

    Returns
    -------
    dict
        The final state: rounds with their jobs and resolutions, and the reason to stop.
    """
    say = report or (lambda msg: None)
    f = req.filter
    state = _load_state(state_path, req)
    if state["finished"]:
        say(f"loop already finished: {state['stop_reason']}")
        return state
    project = _api_call(f"project {f.project}", lambda: cs.find_project(f.project))
    save = lambda: write_json(state_path, state)  # noqa: E731
    if not state["rounds"]:
        start = _api_call(f"job {f.job} in project {f.project}", lambda: cs.find_job(f.project, f.job))
        _wait(start, req)
        state["rounds"].append({"round": 0, "refine_job": start.uid, "resolution_angstrom": _resolution(start, f.output)})
        save()
        say(f"round 0: {start.uid} at {state['rounds'][0]['resolution_angstrom']:.3f} Å")
    while True:
        res = [r["resolution_angstrom"] for r in state["rounds"]]
        reason = loop_decision(res, max_rounds=req.max_rounds, min_improvement_angstrom=req.min_improvement_angstrom)
        if reason is not None:
            state.update(finished=True, stop_reason=reason, current=None)
            save()
            say(f"stop: {reason}")
            return state
        prev = state["rounds"][-1]["refine_job"]
        cur = state["current"] or {"round": len(state["rounds"]), "filter_job": None, "refine_job": None}
        if cur["filter_job"] is None:
            step = run_filter_job(cs, dataclasses.replace(f, job=prev))
            cur["filter_job"] = step["external_job"]
            state["current"] = cur
            save()
            say(f"round {cur['round']}: filtered {prev} into {cur['filter_job']}")
        if cur["refine_job"] is None:
            prev_job = cs.find_job(f.project, prev)
            conns: dict[str, Any] = {"particles": (prev, "particles"), "volume": (cur["filter_job"], OUTPUT_NAME)}
            if "mask" in prev_job.outputs:
                conns["mask"] = (prev, "mask")
            job = project.create_job(f.workspace, req.refine_type, connections=conns, params=dict(req.refine_params),
                                     title=f"locband loop round {cur['round']}")
            cur["refine_job"] = job.uid
            save()
            job.queue(req.lane)
            say(f"round {cur['round']}: queued {req.refine_type} {job.uid}")
        job = cs.find_job(f.project, cur["refine_job"])
        _wait(job, req)
        state["rounds"].append({"round": cur["round"], "filter_job": cur["filter_job"], "refine_job": job.uid,
                                "resolution_angstrom": _resolution(job, f.output)})
        state["current"] = None
        save()
        say(f"round {cur['round']}: {job.uid} at {state['rounds'][-1]['resolution_angstrom']:.3f} Å")

