"""``locband cryosparc filter``: a refinement's half-maps filtered in a new External job.

Reads the refinement's ``volume`` output, checks it, and only then creates an External job
connected to it, filters, uploads filtered map, filtered halves and local resolution into the
External job's folder and saves a ``volume`` output whose slot dtypes copy the source output's.
With ``interpretation`` the job also makes the interpretation map and saves it as a second
output, ``denoised_volume`` (never the one a refinement is seeded with).
Bad input therefore leaves nothing in the project; a failure after the job was created marks it
failed with the reason (``with job.run()``). The maps are read in place where the project folder
is visible from this machine, and downloaded otherwise.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from locband import __version__
from locband.adapters.cryosparc.common import (
    DENOISED_OUTPUT_NAME,
    DENOISED_SLOT_KINDS,
    DENOISED_TITLE,
    HALF_SLOTS,
    INPUT_NAME,
    OUTPUT_NAME,
    OUTPUT_SLOTS,
    FilterRequest,
    build_output_fields,
    check_against_record,
    check_volume_record,
    choose_mask_slot,
    filter_maps,
    output_slot_specs,
)
from locband.adapters.cryosparc.session import JobLog, api_call
from locband.engine.params import ProgressCallback
from locband.errors import CryosparcJobError
from locband.inputs import load_inputs
from locband.interpretation import PROGRESS_SHARE, DenoiseJob, interpretation_part
from locband.io.cs import VolumeRecord, download, project_file, record_from_dataset, upload
from locband.io.mrc import MapData, write_map
from locband.io.paths import temporary_folder
from locband.io.summary import write_json
from locband.output_names import INTERPRETATION_PREFIX, MAP_KINDS, cryosparc_upload_name
from locband.pipeline import OutputPart
from locband.progress import stage
from locband.summary import fsc_text, summarise

__all__ = ["run_filter_job"]



@dataclass(frozen=True)
class _Source:
    """The refinement's volume output, checked."""

    project: Any
    dtypes: dict[str, str]  # slot -> dtype of the source output
    mask_slot: str | None
    record: VolumeRecord

    @property
    def slots(self) -> list[str]:
        return list(HALF_SLOTS) + ([self.mask_slot] if self.mask_slot else [])


def _source(cs: Any, req: FilterRequest) -> _Source:
    """Find and check the source output (nothing is created in the project here)."""
    project = api_call(f"project {req.project}", lambda: cs.find_project(req.project))
    src = api_call(f"job {req.job} in project {req.project}", lambda: cs.find_job(req.project, req.job))
    outputs = src.outputs
    if req.output not in outputs:
        raise CryosparcJobError(f"job {req.project} {req.job} has no output {req.output!r} (outputs: "
                                f"{sorted(outputs)})")
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
    dset = api_call(f"output {req.output!r} of job {req.job}", lambda: src.load_output(req.output, slots=slots))
    record = record_from_dataset(dset, source=f"{req.project} {req.job} output {req.output}")
    check_volume_record(record)
    return _Source(project, dtypes, mslot, record)


def _fetch(project: Any, project_dir: str, rel: str, tmp: Path, what: str) -> tuple[Path, bool]:
    """Local path of a project file: read in place where visible, else downloaded into ``tmp``."""
    local = project_file(project_dir, rel)
    if local is not None:
        return local, False
    target = tmp / f"{what}_{Path(rel).name}"
    api_call(f"file {rel!r} of project {project.uid}", lambda: download(project, rel, target))
    return target, True


def _create_job(src: _Source, req: FilterRequest) -> Any:
    """The External job, connected to the source output and with its output declared."""
    desc = f"locband {__version__}: local band-wise filter of {req.job} {req.output}"
    ext = src.project.create_external_job(req.workspace, title=req.title, desc=desc)
    try:
        ext.connect(INPUT_NAME, req.job, req.output, slots=[{"name": s, "dtype": src.dtypes[s]} for s in src.slots])
        ext.add_output(type="volume", name=OUTPUT_NAME, slots=output_slot_specs(src.dtypes),
                       title="locband filtered volume")
        if req.interpretation is not None:
            ext.add_output(type="volume", name=DENOISED_OUTPUT_NAME, title=DENOISED_TITLE,
                           slots=output_slot_specs(src.dtypes, DENOISED_SLOT_KINDS))
    except Exception as exc:
        ext.stop(error=f"locband could not set up the job: {exc}")
        raise
    return ext


def run_filter_job(cs: Any, req: FilterRequest, *, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Filter a refinement's half-maps in a new External job (see the module docstring).

    Returns
    -------
    dict
        The summary, with ``external_job``, ``output``, ``source``, ``downloaded`` and ``mask_slot``.

    Raises
    ------
    CryosparcJobError
        Missing project, job, output or slot; a volume without half maps; disagreeing pixel sizes
        (all raised before anything is created in the project).
    Exception
        Whatever failed after the External job was created; the job is then marked failed.
    """
    src = _source(cs, req)
    rec = src.record.slots
    project_dir = str(src.project.dir)  # one request to the server
    with temporary_folder("locband_cs_") as tmp:
        fetched = {s: _fetch(src.project, project_dir, rec[s].path, tmp, s) for s in src.slots if s in rec}
        mask = fetched[src.mask_slot][0] if src.mask_slot and src.mask_slot in fetched else None
        m1, m2, mk, px = load_inputs(fetched["map_half_A"][0], fetched["map_half_B"][0], mask, pixel_size_angstrom=None)
        check_against_record(src.record, m1, px)
        ext = _create_job(src, req)  # every input check has passed: only now does the project change
        inputs = {"half1": f"{req.project}/{rec['map_half_A'].path}",
                  "half2": f"{req.project}/{rec['map_half_B'].path}",
                  "mask": f"{req.project}/{rec[src.mask_slot].path}" if mk is not None and src.mask_slot else None}
        summary = _run_in_job(ext, req, (m1, m2, mk), px, tmp, src.mask_slot, inputs, progress)
    summary.update(external_job=ext.uid, output=OUTPUT_NAME, source=f"{req.project} {req.job} {req.output}",
                   downloaded=sorted(s for s, (_, dl) in fetched.items() if dl), mask_slot=src.mask_slot)
    return summary


def _upload_results(ext: Any, result: Any, summary: dict[str, Any], origin: tuple[float, float, float],
                    px: float, tmp: Path) -> dict[str, str]:
    """Maps and summary to the job's own folder; returns slot -> uploaded name."""
    names = {slot: cryosparc_upload_name(ext.uid, slot) for slot in OUTPUT_SLOTS}
    for slot, name in names.items():  # the output is saved only after all of them
        upload(ext, name, write_map(tmp / name, getattr(result, OUTPUT_SLOTS[slot]), pixel_size_angstrom=px,
                                    origin=origin))
    summary_name = cryosparc_upload_name(ext.uid, "summary")
    upload(ext, summary_name, write_json(tmp / summary_name, summary))
    return names


def _upload_interpretation(ext: Any, part: OutputPart, tmp: Path) -> dict[str, str]:
    """The interpretation map, its halves (labelled for interpretation) and summary; returns slot -> uploaded name."""
    names = {slot: cryosparc_upload_name(ext.uid, INTERPRETATION_PREFIX + slot) for slot in DENOISED_SLOT_KINDS}
    px, labels = part.result.pixel_size_angstrom, part.labels or {}
    for slot, name in names.items():
        kind = DENOISED_SLOT_KINDS[slot].removeprefix(part.prefix)
        upload(ext, name, write_map(tmp / name, getattr(part.result, MAP_KINDS[kind]), pixel_size_angstrom=px,
                                    origin=part.origin, labels=labels.get(kind, ())))
    summary_name = cryosparc_upload_name(ext.uid, INTERPRETATION_PREFIX + "summary")
    upload(ext, summary_name, write_json(tmp / summary_name, part.summary))
    return names


def _save(ext: Any, output: str, names: dict[str, str], shape: tuple[int, ...], px: float) -> None:
    dset = ext.alloc_output(output, 1)
    for key, value in build_output_fields({s: f"{ext.uid}/{n}" for s, n in names.items()}, shape=shape,
                                          pixel_size_angstrom=px).items():
        dset[key] = value
    ext.save_output(output, dset)


def _interpretation(req: FilterRequest, maps: tuple[MapData, MapData, MapData | None], inputs: dict[str, str | None],
                    tmp: Path, progress: Any) -> OutputPart | None:
    """The interpretation map of the same files, when asked (``None`` otherwise)."""
    if req.interpretation is None:
        return None
    m1, m2, mk = maps
    job = DenoiseJob(half1=Path(m1.path), half2=Path(m2.path), out_dir=tmp, mask=None if mk is None else Path(mk.path),
                     denoise=req.interpretation, engine=req.engine, report=False)
    part = interpretation_part(job, progress=progress)
    part.summary["inputs"] = inputs  # project paths, as the filter's summary names them
    return part


def _run_in_job(ext: Any, req: FilterRequest, maps: tuple[MapData, MapData, MapData | None], px: float, tmp: Path,
                mslot: str | None, inputs: dict[str, str | None], progress: ProgressCallback | None) -> dict[str, Any]:
    m1, m2, mk = maps
    log = JobLog(ext)

    def both(fraction: float, message: str) -> None:
        log(fraction, message)
        if progress is not None:
            progress(fraction, message)

    share = 0.0 if req.interpretation is None else PROGRESS_SHARE
    with ext.run():
        ext.log(f"locband {__version__}: filtering {req.job} {req.output} ({'x'.join(map(str, m1.data.shape))} "
                f"voxels, {px:.4f} Å, mask {mslot or 'none'})")
        with warnings.catch_warnings(record=True) as caught:  # data-quality warnings go to the job's log too
            warnings.simplefilter("always")
            result = filter_maps(m1, m2, mk, px, req.engine, stage(both, 0.0, 1.0 - share))
            part = _interpretation(req, maps, inputs, tmp, stage(both, 1.0 - share, share, "interpretation map: "))
        for w in caught:
            ext.log(f"locband: {w.message}", level="warning")
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        summary = summarise(result, inputs=inputs, timings={}, mask=None if mk is None else mk.data)
        names = _upload_results(ext, result, summary, m1.origin, px, tmp)
        denoised = _upload_interpretation(ext, part, tmp) if part is not None else None
        _save(ext, OUTPUT_NAME, names, result.full.shape, px)
        if denoised is not None:
            _save(ext, DENOISED_OUTPUT_NAME, denoised, result.full.shape, px)
            ext.log(f"locband: interpretation map saved as output '{DENOISED_OUTPUT_NAME}': for model building and "
                    f"viewing only, never a refinement reference (refinements take '{OUTPUT_NAME}')")
        which = "unmasked" if summary["fsc"]["masked"] is None else "masked"
        ext.log(f"locband: done; FSC=0.143 {fsc_text(summary, which)} ({which}); output '{OUTPUT_NAME}' saved")
    return summary
