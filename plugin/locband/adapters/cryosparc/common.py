"""What the cryoSPARC commands share: their requests, the slots of a volume, checks, the engine call."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locband.engine.local import LocalFilter
from locband.engine.params import FilterResult, ProgressCallback
from locband.errors import CryosparcJobError
from locband.inputs import PIXEL_SIZE_RTOL, naming_engine_errors
from locband.io.cs import VolumeRecord
from locband.io.mrc import MapData
from locband.options import DenoiseSettings, EngineSettings
from locband.output_names import INTERPRETATION_PREFIX

__all__ = ["HALF_SLOTS", "OUTPUT_SLOTS", "SLOT_KINDS", "MASK_SLOTS_AUTO", "OUTPUT_NAME", "INPUT_NAME",
           "DENOISED_OUTPUT_NAME", "DENOISED_SLOT_KINDS", "DENOISED_TITLE", "DEFAULT_SLOT_DTYPE", "FilterRequest",
           "OfflineRequest", "LoopRequest", "choose_mask_slot",
           "check_volume_record", "output_slot_specs", "build_output_fields", "filter_maps", "check_against_record"]

HALF_SLOTS = ("map_half_A", "map_half_B")
#: output slot -> FilterResult attribute
OUTPUT_SLOTS = {"map": "full", "map_half_A": "half1", "map_half_B": "half2", "map_locres": "local_resolution_angstrom"}
#: output slot -> output kind (locband.output_names)
SLOT_KINDS = {"map": "full", "map_half_A": "half1", "map_half_B": "half2", "map_locres": "local_resolution"}
MASK_SLOTS_AUTO = ("mask_fsc", "mask_refine")
#: the External job's output and input
OUTPUT_NAME = "filtered_volume"
INPUT_NAME = "input_volume"
DEFAULT_SLOT_DTYPE = "blob"
#: the interpretation map's own output (``--interpretation``), apart from the one that seeds refinements:
#: slot -> output kind (:data:`locband.output_names.INTERPRETATION`). Its halves (each processed alone,
#: for cross-validation) are no ``map_half_A``/``_B``: an FSC between them is no resolution.
DENOISED_OUTPUT_NAME = "denoised_volume"
DENOISED_SLOT_KINDS = {"map": INTERPRETATION_PREFIX + "full", "map_crossval_A": INTERPRETATION_PREFIX + "half1",
                       "map_crossval_B": INTERPRETATION_PREFIX + "half2"}
DENOISED_TITLE = "locband interpretation map (never a refinement reference)"


@dataclass(frozen=True)
class FilterRequest:
    """What ``locband cryosparc filter`` was asked to do (pure data, built from argv).

    ``interpretation``: also the interpretation map, in its own output (:data:`DENOISED_OUTPUT_NAME`).
    """

    project: str
    workspace: str
    job: str
    output: str = "volume"
    mask_slot: str = "auto"
    engine: EngineSettings = field(default_factory=EngineSettings)
    title: str = "locband local filter"
    interpretation: DenoiseSettings | None = None


@dataclass(frozen=True)
class OfflineRequest:
    """What ``locband cryosparc offline`` was asked to do (pure data, built from argv).

    Attributes
    ----------
    source : Path
        A refinement's job folder (``<project>/J42``) or its volume ``.cs`` file.
    out_dir : Path
        Output folder: the maps of ``locband filter`` plus ``locband_volume.cs`` / ``.csg``.
    project_dir : Path or None
        Folder the ``.cs`` paths are relative to (default: the parent of the job folder).
    mask_slot : str
        ``auto``, ``none`` or a slot name.
    engine : EngineSettings
        Filter settings, threads and FFT backend.
    interpretation : DenoiseSettings or None
        Also the interpretation map, with these settings (its own dataset and group file).
    """

    source: Path
    out_dir: Path
    project_dir: Path | None = None
    mask_slot: str = "auto"
    engine: EngineSettings = field(default_factory=EngineSettings)
    interpretation: DenoiseSettings | None = None


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


# -- pure translation ---------------------------------------------------------------------
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
        raise CryosparcJobError(f"volume {record.source!r}: map_half_A has shape {a.shape} but map_half_B has "
                                f"{b.shape}")
    pa, pb = a.pixel_size_angstrom, b.pixel_size_angstrom
    if pa > 0 and pb > 0 and not math.isclose(pa, pb, rel_tol=PIXEL_SIZE_RTOL):
        raise CryosparcJobError(f"volume {record.source!r}: pixel sizes disagree: map_half_A/psize_A = {pa:.4f} Å, "
                                f"map_half_B/psize_A = {pb:.4f} Å")
    return pa


def output_slot_specs(source_dtypes: dict[str, str], slots: Iterable[str] = OUTPUT_SLOTS) -> list[dict[str, str]]:
    """Slots of a new ``volume`` output; dtypes copied from the source output's results.

    A slot the source does not have (``map_locres``, the interpretation map's) takes the dtype
    of the source's ``map``.
    """
    fallback = source_dtypes.get("map", DEFAULT_SLOT_DTYPE)
    return [{"name": s, "dtype": source_dtypes.get(s, fallback)} for s in slots]


def build_output_fields(paths: dict[str, str], *, shape: tuple[int, ...],
                        pixel_size_angstrom: float) -> dict[str, list[Any]]:
    """Field values of the one-row output dataset: ``<slot>/path``, ``/shape``, ``/psize_A``."""
    out: dict[str, list[Any]] = {}
    for slot, path in paths.items():
        out[f"{slot}/path"] = [path]
        out[f"{slot}/shape"] = [list(shape)]
        out[f"{slot}/psize_A"] = [float(pixel_size_angstrom)]
    return out


# -- the engine call --------------------------------------------------------------------------
def filter_maps(m1: MapData, m2: MapData, mk: MapData | None, px: float, engine: EngineSettings,
                progress: ProgressCallback | None) -> FilterResult:
    """The local filter of two half-maps read from files; the engine's complaints name both files."""
    lf = LocalFilter(m1.data.shape, pixel_size_angstrom=px, mask=None if mk is None else mk.data,
                     params=engine.params, workers=engine.workers(), backend=engine.fft_backend, device=engine.device)
    with naming_engine_errors(m1.path, m2.path):
        return lf(m1.data, m2.data, progress=progress)


def check_against_record(record: VolumeRecord, m1: MapData, px_header: float) -> None:
    """The voxel size of the dataset row must be that of half-map 1's header."""
    pa = record.slots["map_half_A"].pixel_size_angstrom
    if pa > 0 and not math.isclose(pa, px_header, rel_tol=PIXEL_SIZE_RTOL):
        raise CryosparcJobError(f"pixel sizes disagree: {record.source!r} says map_half_A/psize_A = {pa:.4f} Å but "
                                f"the header of {m1.path!r} says {px_header:.4f} Å")
