"""``locband cryosparc offline``: a refinement's half-maps from its job folder into a new folder.

No connection: the volume ``.cs`` dataset names the half-maps (and masks); the outputs are those
of ``locband filter`` plus a one-row volume dataset ``locband_volume.cs`` and its group file
``locband_volume.csg`` for cryoSPARC's *Import Result Group*, written by the pipeline's own
output writer as one set (:func:`locband.pipeline.write_outputs`). With ``interpretation`` the
set also holds the interpretation map and its own dataset and group file
(``locband_denoised_volume.cs`` / ``.csg``: the ``denoised_volume`` output of the online job).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from locband import __version__
from locband.adapters.cryosparc.common import (
    DEFAULT_SLOT_DTYPE,
    DENOISED_OUTPUT_NAME,
    DENOISED_SLOT_KINDS,
    DENOISED_TITLE,
    HALF_SLOTS,
    OUTPUT_NAME,
    SLOT_KINDS,
    OfflineRequest,
    check_against_record,
    check_volume_record,
    choose_mask_slot,
    filter_maps,
)
from locband.engine.params import ProgressCallback
from locband.errors import CryosparcJobError
from locband.inputs import load_inputs
from locband.interpretation import PROGRESS_SHARE, DenoiseJob, interpretation_part
from locband.io.cs import VolumeRecord, VolumeSlot, read_volume_cs, volume_cs_of, write_csg, write_volume_cs
from locband.io.outputs import Writer
from locband.io.paths import is_file, resolved
from locband.output_names import CRYOSPARC_OFFLINE
from locband.pipeline import OutputPart, plan_outputs, write_outputs
from locband.progress import stage
from locband.summary import summarise

__all__ = ["filter_offline"]



@dataclass(frozen=True)
class _Source:
    """What the volume dataset points at."""

    cs_path: Path
    record: VolumeRecord
    project_dir: Path
    mask_slot: str | None
    maps: dict[str, Path]  # slot -> local file

    @property
    def inputs(self) -> dict[str, Path | None]:
        return {"volume .cs file": self.cs_path, "map_half_A": self.maps["map_half_A"],
                "map_half_B": self.maps["map_half_B"], "mask": self.maps.get(self.mask_slot or "")}


def _locate(req: OfflineRequest) -> _Source:
    """Read the volume dataset and find its maps (relative paths: in the project folder)."""
    cs_path = volume_cs_of(req.source)
    record = read_volume_cs(cs_path)
    check_volume_record(record)
    proj = Path(req.project_dir) if req.project_dir is not None else resolved(cs_path).parent.parent
    mslot = choose_mask_slot(record.slots, req.mask_slot)
    maps = {}
    for slot in HALF_SLOTS + ((mslot,) if mslot else ()):
        p = Path(record.slots[slot].path)
        p = p if p.is_absolute() else proj / p
        if not is_file(p):
            raise CryosparcJobError(f"{slot} of {str(cs_path)!r} points to {str(p)!r}, which does not exist "
                                    f"(paths are taken relative to the project folder {str(proj)!r}; "
                                    "set it with --project-dir)")
        maps[slot] = p
    return _Source(cs_path, record, proj, mslot, maps)


def _volume_slots(out_dir: Path, project_dir: Path, shape: tuple[int, ...], pixel_size_angstrom: float,
                  slot_kinds: dict[str, str]) -> tuple[dict[str, VolumeSlot], bool]:
    """A new dataset's slots: paths relative to the project folder when the outputs are inside it."""
    out_abs = resolved(out_dir)
    try:
        base: Path | None = out_abs.relative_to(resolved(project_dir))
    except ValueError:
        base = None
    slots = {slot: VolumeSlot(path=str((base if base is not None else out_abs) / CRYOSPARC_OFFLINE[kind]),
                              shape=shape, pixel_size_angstrom=pixel_size_angstrom)
             for slot, kind in slot_kinds.items()}
    return slots, base is not None


def _dataset(req: OfflineRequest, src: _Source, shape: tuple[int, ...], px: float, *, denoised: bool = False
             ) -> tuple[dict[str, Writer], bool]:
    """The ``.cs`` and ``.csg`` writers of one output (the filtered volume, or the interpretation map's)."""
    slot_kinds, suffix = (DENOISED_SLOT_KINDS, "_denoised") if denoised else (SLOT_KINDS, "")
    slots, relative = _volume_slots(req.out_dir, src.project_dir, shape, px, slot_kinds)
    group = {"group_name": DENOISED_OUTPUT_NAME if denoised else OUTPUT_NAME,
             "cs_name": CRYOSPARC_OFFLINE["volume_cs" + suffix],
             "title": DENOISED_TITLE if denoised else "locband filtered volume",
             "slots": {s: DEFAULT_SLOT_DTYPE for s in slots}, "version": __version__}
    return {"volume_cs" + suffix: lambda p: write_volume_cs(p, slots),
            "group_csg" + suffix: lambda p: write_csg(p, **group)}, relative


def _interpretation(req: OfflineRequest, src: _Source, progress: ProgressCallback | None) -> list[OutputPart]:
    """The interpretation map of the same files, when asked."""
    if req.interpretation is None:
        return []
    job = DenoiseJob(half1=src.maps["map_half_A"], half2=src.maps["map_half_B"], out_dir=req.out_dir,
                     mask=src.maps.get(src.mask_slot or ""), denoise=req.interpretation, engine=req.engine,
                     report=False)
    return [interpretation_part(job, progress=progress)]


def filter_offline(req: OfflineRequest, *, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Filter the half-maps of a cryoSPARC job folder (or volume ``.cs``) into a new folder.

    Parameters
    ----------
    req : OfflineRequest
        Source, output folder, mask slot and engine settings.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    dict
        The summary written to ``summary.json`` (with ``cryosparc`` details).

    Raises
    ------
    InputFileError
        Missing folder, file or slot, a volume without half maps, disagreeing pixel sizes.
    OutputFileError
        An output would replace an input, or cannot be written.
    """
    src = _locate(req)
    # before any work: no output may be one of the inputs, no output name may be taken by a folder
    outs = plan_outputs(req.out_dir, inputs=src.inputs, names=CRYOSPARC_OFFLINE)
    m1, m2, mk, px = load_inputs(src.maps["map_half_A"], src.maps["map_half_B"], src.maps.get(src.mask_slot or ""),
                                 pixel_size_angstrom=None)
    check_against_record(src.record, m1, px)
    share = 0.0 if req.interpretation is None else PROGRESS_SHARE
    result = filter_maps(m1, m2, mk, px, req.engine, stage(progress, 0.0, 1.0 - share))
    parts = _interpretation(req, src, stage(progress, 1.0 - share, share, "interpretation map: "))
    summary = summarise(result, inputs={"half1": str(src.maps["map_half_A"]), "half2": str(src.maps["map_half_B"]),
                                        "mask": str(src.maps[src.mask_slot]) if src.mask_slot else None},
                        timings={}, mask=None if mk is None else mk.data)
    extra, relative = _dataset(req, src, result.full.shape, px)
    if parts:
        extra.update(_dataset(req, src, result.full.shape, px, denoised=True)[0])
    summary["cryosparc"] = {"source": str(src.cs_path), "project_dir": str(src.project_dir), "mask_slot": src.mask_slot,
                            **{k: str(req.out_dir / CRYOSPARC_OFFLINE[k]) for k in extra},
                            "paths_relative_to_project": relative}
    write_outputs(result, outs, summary=summary, names=CRYOSPARC_OFFLINE, origin=m1.origin, extra=extra, parts=parts)
    return summary
