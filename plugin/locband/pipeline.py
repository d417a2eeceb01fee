"""Files in, files out: read half-maps, run the engine, write every output atomically.

Shared by ``locband filter`` and the host adapters that work on plain MRC files. Only
:mod:`locband.io` touches the files; this module checks that the inputs fit together and
names the files in its errors.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from locband import __version__
from locband.engine.local import LocalFilter
from locband.engine.params import CROSSED, FilterParams, FilterResult
from locband.engine.units import describe_fsc_resolution, fsc_resolution_angstrom
from locband.io.errors import InputFileError
from locband.io.mrc import MapData, read_map, write_map
from locband.io.outputs import OutputSet, Writer
from locband.io.summary import write_json

__all__ = ["OUTPUT_NAMES", "check_inputs_agree", "filter_files", "load_inputs", "plan_outputs", "summarise",
           "write_outputs", "fsc_text", "naming_engine_errors"]

#: output file names inside the output folder
OUTPUT_NAMES = {
    "full": "filtered.mrc",
    "half1": "filtered_half1.mrc",
    "half2": "filtered_half2.mrc",
    "local_resolution": "local_resolution.mrc",
    "band_snr": "band_snr.mrc",
    "summary": "summary.json",
}

_PIXEL_TOLERANCE = 1e-3  # relative: headers written by different programs round differently
_MIN_EDGE = 8  # the smallest box edge LocalFilter plans for


class _MapInfo(Protocol):
    """A map's shape, voxel size and file: :class:`MapData` or :class:`~locband.io.mrc.MapHeader`."""

    @property
    def shape(self) -> tuple[int, ...]: ...  # noqa: D102

    @property
    def pixel_size_angstrom(self) -> float: ...  # noqa: D102

    @property
    def path(self) -> str: ...  # noqa: D102


def check_inputs_agree(half1: _MapInfo, half2: _MapInfo, mask: _MapInfo | None, *,
                       pixel_size_angstrom: float | None) -> float:
    """Check that the half-maps and mask fit together; return the voxel size to use.

    Works on :class:`~locband.io.mrc.MapHeader` (headers only, e.g. when a host validates a job
    before it runs) as on :class:`~locband.io.mrc.MapData`.

    Raises
    ------
    InputFileError
        Shapes differ or are too small, the voxel sizes differ, or half-map 1 says 0 without
        ``pixel_size_angstrom``.
    """
    if half1.shape != half2.shape:
        raise InputFileError(f"half-maps differ in shape: {half1.path} is {half1.shape} (z, y, x) but "
                             f"{half2.path} is {half2.shape}")
    if min(half1.shape) < _MIN_EDGE:
        raise InputFileError(f"half-maps {half1.path!r} and {half2.path!r} are {half1.shape} voxels (z, y, x): "
                             f"locband needs at least {_MIN_EDGE} along every axis")
    if mask is not None and mask.shape != half1.shape:
        raise InputFileError(f"mask {mask.path!r} has shape {mask.shape} but the half-maps are {half1.shape}")
    if pixel_size_angstrom is not None:
        return float(pixel_size_angstrom)
    p1, p2 = half1.pixel_size_angstrom, half2.pixel_size_angstrom
    if p1 <= 0:
        raise InputFileError(f"half-map 1 {half1.path!r} has voxel size 0 in its header: "
                             "give the voxel size with --pixel-size")
    if not math.isclose(p1, p2, rel_tol=_PIXEL_TOLERANCE):
        raise InputFileError(f"half-maps differ in voxel size: {half1.path} says {p1:.4f} Å, "
                             f"{half2.path} says {p2:.4f} Å")
    if mask is not None and mask.pixel_size_angstrom > 0 and not math.isclose(p1, mask.pixel_size_angstrom,
                                                                              rel_tol=_PIXEL_TOLERANCE):
        raise InputFileError(f"mask {mask.path!r} has voxel size {mask.pixel_size_angstrom:.4f} Å but the "
                             f"half-maps have {p1:.4f} Å")
    return float(p1)


def load_inputs(half1: Path, half2: Path, mask: Path | None, *,
                pixel_size_angstrom: float | None) -> tuple[MapData, MapData, MapData | None, float]:
    """Read and cross-check the half-maps and mask; return them with the voxel size to use."""
    m1 = read_map(half1, what="half-map 1")
    m2 = read_map(half2, what="half-map 2")
    mk = read_map(mask, what="mask") if mask is not None else None
    pixel_size_angstrom = check_inputs_agree(m1, m2, mk, pixel_size_angstrom=pixel_size_angstrom)
    for what, md in (("half-map 1", m1), ("half-map 2", m2)):
        if float(md.data.max()) == float(md.data.min()):
            raise InputFileError(f"{what} {md.path!r} is constant (every voxel {float(md.data.flat[0])!r}): "
                                 "expected a reconstruction")
        if not np.isfinite(md.data).all():
            bad = int(md.data.size - np.count_nonzero(np.isfinite(md.data)))
            raise InputFileError(f"{what} {md.path!r} has {bad} non-finite (NaN or infinite) voxels")
    if mk is not None:
        if not np.isfinite(mk.data).all():
            bad = int(mk.data.size - np.count_nonzero(np.isfinite(mk.data)))
            raise InputFileError(f"mask {str(mask)!r} has {bad} non-finite (NaN or infinite) voxels: expected "
                                 "values in [0, 1]")
        lo, hi = float(mk.data.min()), float(mk.data.max())
        if lo < -1e-5 or hi > 1 + 1e-5:
            raise InputFileError(f"mask {str(mask)!r} must hold values in [0, 1], found min {lo:.4g} and max {hi:.4g}")
        if hi <= 0:
            raise InputFileError(f"mask {str(mask)!r} is all zero: expected a soft mask around the particle")
    return m1, m2, mk, float(pixel_size_angstrom)


def summarise(result: FilterResult, *, inputs: dict[str, str | None], timings: dict[str, float],
              mask: np.ndarray | None) -> dict[str, Any]:
    """The JSON summary of one run."""
    px = result.pixel_size_angstrom
    curves = {"unmasked": result.fsc_unmasked, "masked": result.fsc_masked}
    # value None: not reached (FSC below the threshold from the first shell on); status says
    # whether a value is a crossing or the last shell as a bound (FSCCurve.crossing_status)
    fsc_res = {thr: {k: (None, None) if c is None else fsc_resolution_angstrom(c, thr, pixel_size_angstrom=px)
                     for k, c in curves.items()} for thr in (0.143, 0.5)}

    sel = result.local_resolution_angstrom[mask > 0.5] if mask is not None else result.local_resolution_angstrom
    sel = sel if sel.size else result.local_resolution_angstrom
    pct = {f"p{q}": float(np.percentile(sel, q)) for q in (5, 25, 50, 75, 95)}
    return {
        "locband_version": __version__,
        "inputs": inputs,
        "pixel_size_angstrom": px,
        "shape_zyx": list(result.full.shape),
        "settings": result.params.to_dict(),
        "n_bands": result.bands.n_bands,
        "bands": result.bands.to_dict(),
        "fsc": {"unmasked": result.fsc_unmasked.to_dict(),
                "masked": None if result.fsc_masked is None else result.fsc_masked.to_dict()},
        "fsc_0143_angstrom": {k: v for k, (v, _) in fsc_res[0.143].items()},
        "fsc_05_angstrom": {k: v for k, (v, _) in fsc_res[0.5].items()},
        "fsc_crossing": {key: {k: status for k, (_, status) in fsc_res[thr].items()}
                         for key, thr in (("0143", 0.143), ("05", 0.5))},
        "local_resolution_angstrom": {**pct, "within": "mask > 0.5" if mask is not None else "whole box",
                                      "criterion": result.params.criterion},
        "timings_seconds": {**{k: round(v, 4) for k, v in result.timings.items()},
                            **{k: round(v, 4) for k, v in timings.items()}},
    }


def fsc_text(summary: dict[str, Any], which: str = "unmasked", threshold: str = "0143") -> str:
    """The FSC resolution of a summary as a phrase to follow "FSC=0.143": "at 4.20 Å", "at <= 3.00 Å (...)", ....

    ``which`` is "unmasked" or "masked", ``threshold`` "0143" or "05". Summaries written
    before the crossing status existed count as crossed.
    """
    value = (summary.get(f"fsc_{threshold}_angstrom") or {}).get(which)
    status = ((summary.get("fsc_crossing") or {}).get(threshold) or {}).get(which) or CROSSED
    return describe_fsc_resolution(value, status, threshold=0.143 if threshold == "0143" else 0.5)


@contextlib.contextmanager
def naming_engine_errors(half1: str | Path, half2: str | Path) -> Iterator[None]:
    """Turn the engine's ``ValueError`` about a pair of halves into an ``InputFileError`` naming both files."""
    try:
        yield
    except InputFileError:
        raise
    except ValueError as exc:
        raise InputFileError(f"half-maps {str(half1)!r} and {str(half2)!r}: {exc}") from None


def plan_outputs(out_dir: Path, *, half1: Path, half2: Path, mask: Path | None,
                 extra_names: Iterable[str] = (), also_writes: Iterable[str] = ()) -> OutputSet:
    """The output set of one filter run, checked before any work.

    Every name the set may hold (maps, ``summary.json``, ``report.png``/``.pdf``, ``extra_names``)
    and every name written beside it (``also_writes``) is compared with the inputs, and the
    folder must be writable or creatable; nothing is created yet.

    Raises
    ------
    OutputFileError
        An output would overwrite an input (both named), a folder holds an output name, or the
        output folder cannot be written.
    """
    from locband.report import REPORT_NAMES

    outs = OutputSet(out_dir, inputs={"half-map 1": half1, "half-map 2": half2, "mask": mask},
                     owned=[*OUTPUT_NAMES.values(), *REPORT_NAMES.values(), *extra_names], also_writes=also_writes)
    outs.check()
    return outs


def write_outputs(result: FilterResult, out_dir: Path, *, summary: dict[str, Any],
                  origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
                  names: dict[str, str] | None = None, outs: OutputSet | None = None,
                  report: Callable[[dict[str, Any]], Mapping[str, Writer]] | None = None,
                  extra: Mapping[str, Writer] | None = None) -> dict[str, Path]:
    """Write maps, summary, report and ``extra`` files as one set, all-or-nothing; returns kind -> path.

    Parameters
    ----------
    result : FilterResult
        What the engine returned.
    out_dir : Path
        The output folder.
    summary : dict
        The run's summary; ``run_id`` and ``outputs`` are filled in here.
    origin : tuple of float
        MRC header origin (x, y, z) in Å of the maps.
    names : dict, optional
        Output kind -> file name, overriding :data:`OUTPUT_NAMES`.
    outs : OutputSet, optional
        The set planned by :func:`plan_outputs` (default: a set with the output names only).
    report : callable, optional
        ``report(summary) -> {file name: writer}``: the report files, drawn once the summary is
        complete; they join the set.
    extra : mapping, optional
        More files of the set (a host's node file), file name -> ``writer(tmp_path)``.
    """
    names = {**OUTPUT_NAMES, **(names or {})}
    outs = outs if outs is not None else OutputSet(out_dir, owned=names.values())
    px = result.pixel_size_angstrom
    paths: dict[str, Path] = {}

    def writer(vol: np.ndarray, pixel: float) -> Writer:
        return lambda p: write_map(p, vol, pixel_size_angstrom=pixel, origin=origin)

    for key, vol in (("full", result.full), ("half1", result.half1), ("half2", result.half2),
                     ("local_resolution", result.local_resolution_angstrom)):
        paths[key] = outs.add(names[key], writer(vol, px))
    if result.band_snr is not None:
        # an MRC volume stack, one coarse volume per band (centres in summary.json "bands")
        coarse_px = px * result.full.shape[-1] / result.band_snr.shape[-1]
        paths["band_snr"] = outs.add(names["band_snr"], writer(result.band_snr, coarse_px))
    paths["summary"] = outs.add(names["summary"], lambda p: write_json(p, summary))
    summary["run_id"] = outs.run_id
    summary["outputs"] = {k: str(v) for k, v in paths.items()}
    if report is not None:
        from locband.report import REPORT_NAMES

        summary["outputs"].update({f"report_{k}": str(Path(out_dir) / v) for k, v in REPORT_NAMES.items()})
        for name, w in report(summary).items():
            outs.add(name, w)
    for name, w in (extra or {}).items():
        outs.add(name, w)
    outs.commit()
    return {**paths, **{f"report_{k}": Path(v) for k, v in summary["outputs"].items() if k.startswith("report_")}}


def filter_files(half1: Path, half2: Path, *, mask_path: Path | None, out_dir: Path,
                 pixel_size_angstrom: float | None = None, params: FilterParams | None = None,
                 workers: int = 1, backend: str | None = None, device: str = "cpu", report: bool = True,
                 progress: Callable[[float, str], None] | None = None,
                 extra_outputs: Mapping[str, Writer] | None = None,
                 also_writes: Iterable[str] = ()) -> dict[str, Any]:
    """Filter two half-map files into ``out_dir``; returns the summary written there.

    Before any work the outputs are checked against the inputs and the folder
    (:func:`plan_outputs`); the folder is created only when the outputs are written, so bad
    input (refused while reading or by the engine) leaves no folder behind. All outputs (maps,
    ``summary.json``, the report, ``extra_outputs``) are one set: see :mod:`locband.io.outputs`.

    Raises
    ------
    InputFileError
        Unreadable or inconsistent inputs, an output that would overwrite an input, an
        unwritable output folder, or a write error (the message names the file).
    """
    t0 = time.perf_counter()
    outs = plan_outputs(out_dir, half1=half1, half2=half2, mask=mask_path, extra_names=list(extra_outputs or ()),
                        also_writes=also_writes)
    m1, m2, mk, px = load_inputs(half1, half2, mask_path, pixel_size_angstrom=pixel_size_angstrom)
    t_read = time.perf_counter() - t0
    origin = m1.origin
    lf = LocalFilter(m1.data.shape, pixel_size_angstrom=px, mask=None if mk is None else mk.data,
                     params=params, workers=workers, backend=backend, device=device)
    # hand the arrays over: the engine drops them once it has their spectra (memory at 256^3)
    halves = [m1.data, m2.data]
    del m1, m2, mk
    with naming_engine_errors(half1, half2):
        result = lf.filter_owned(halves, progress=progress)
    t1 = time.perf_counter()
    summary = summarise(result, inputs={"half1": str(half1), "half2": str(half2),
                                        "mask": None if mask_path is None else str(mask_path)},
                        timings={"read": t_read}, mask=lf.mask)

    def report_files(summary: dict[str, Any]) -> Mapping[str, Writer]:
        from locband.report import report_outputs

        raw = read_map(half1, what="half-map 1").data
        raw += read_map(half2, what="half-map 2").data
        raw *= np.float32(0.5)
        return report_outputs(summary=summary, raw=raw, filtered=result.full,
                              local_resolution=result.local_resolution_angstrom, mask=lf.mask)

    write_outputs(result, out_dir, summary=summary, origin=origin, outs=outs,
                  report=report_files if report else None, extra=extra_outputs)
    summary["timings_seconds"]["write"] = round(time.perf_counter() - t1, 4)
    return summary
