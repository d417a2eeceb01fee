"""Files in, files out: read half-maps, run the engine, write every output atomically.

Shared by ``locband filter`` and the host adapters that work on plain MRC files. Only
:mod:`locband.io` touches the files; this module checks that the inputs fit together and
names the files in its errors.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from locband import __version__
from locband.engine.local import LocalFilter
from locband.engine.params import FilterParams, FilterResult
from locband.engine.units import cycles_to_angstrom
from locband.io.atomic import ensure_output_dir
from locband.io.errors import InputFileError
from locband.io.mrc import MapData, read_map, write_map
from locband.io.outputs import OutputSet
from locband.io.summary import write_json

__all__ = ["OUTPUT_NAMES", "filter_files", "load_inputs", "summarise", "write_outputs"]

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


def load_inputs(half1: Path, half2: Path, mask: Path | None, *,
                pixel_size_angstrom: float | None) -> tuple[MapData, MapData, MapData | None, float]:
    """Read and cross-check the half-maps and mask; return them with the voxel size to use."""
    m1 = read_map(half1, what="half-map 1")
    m2 = read_map(half2, what="half-map 2")
    if m1.data.shape != m2.data.shape:
        raise InputFileError(f"half-maps differ in shape: {half1} is {m1.data.shape} (z, y, x) but "
                             f"{half2} is {m2.data.shape}")
    mk = read_map(mask, what="mask") if mask is not None else None
    if mk is not None and mk.data.shape != m1.data.shape:
        raise InputFileError(f"mask {str(mask)!r} has shape {mk.data.shape} but the half-maps are {m1.data.shape}")
    if pixel_size_angstrom is None:
        p1, p2 = m1.pixel_size_angstrom, m2.pixel_size_angstrom
        if p1 <= 0:
            raise InputFileError(f"half-map 1 {str(half1)!r} has voxel size 0 in its header: "
                                 "give the voxel size with --pixel-size")
        if not math.isclose(p1, p2, rel_tol=_PIXEL_TOLERANCE):
            raise InputFileError(f"half-maps differ in voxel size: {half1} says {p1:.4f} Å, {half2} says {p2:.4f} Å")
        if mk is not None and mk.pixel_size_angstrom > 0 and not math.isclose(p1, mk.pixel_size_angstrom,
                                                                              rel_tol=_PIXEL_TOLERANCE):
            raise InputFileError(f"mask {str(mask)!r} has voxel size {mk.pixel_size_angstrom:.4f} Å but the "
                                 f"half-maps have {p1:.4f} Å")
        pixel_size_angstrom = p1
    for what, md in (("half-map 1", m1), ("half-map 2", m2)):
        if float(md.data.max()) == float(md.data.min()):
            raise InputFileError(f"{what} {md.path!r} is constant (every voxel {float(md.data.flat[0])!r}): "
                                 "expected a reconstruction")
        if not np.isfinite(md.data).all():
            bad = int(md.data.size - np.count_nonzero(np.isfinite(md.data)))
            raise InputFileError(f"{what} {md.path!r} has {bad} non-finite (NaN or infinite) voxels")
    if mk is not None:
        lo, hi = float(mk.data.min()), float(mk.data.max())
        if not np.isfinite(mk.data).all() or lo < -1e-5 or hi > 1 + 1e-5:
            raise InputFileError(f"mask {str(mask)!r} must hold values in [0, 1], found min {lo:.4g} and max {hi:.4g}")
        if hi <= 0:
            raise InputFileError(f"mask {str(mask)!r} is all zero: expected a soft mask around the particle")
    return m1, m2, mk, float(pixel_size_angstrom)


def summarise(result: FilterResult, *, inputs: dict[str, str | None], timings: dict[str, float],
              mask: np.ndarray | None) -> dict[str, Any]:
    """The JSON summary of one run."""
    px = result.pixel_size_angstrom

    def crossing(curve: Any, thr: float) -> float | None:
        if curve is None:
            return None
        return float(cycles_to_angstrom(curve.crossing(thr), pixel_size_angstrom=px))

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
        "fsc_0143_angstrom": {"unmasked": crossing(result.fsc_unmasked, 0.143),
                              "masked": crossing(result.fsc_masked, 0.143)},
        "fsc_05_angstrom": {"unmasked": crossing(result.fsc_unmasked, 0.5),
                            "masked": crossing(result.fsc_masked, 0.5)},
        "local_resolution_angstrom": {**pct, "within": "mask > 0.5" if mask is not None else "whole box",
                                      "criterion": result.params.criterion},
        "timings_seconds": {**{k: round(v, 4) for k, v in result.timings.items()},
                            **{k: round(v, 4) for k, v in timings.items()}},
    }


def write_outputs(result: FilterResult, out_dir: Path, *, summary: dict[str, Any],
                  origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
                  names: dict[str, str] | None = None) -> dict[str, Path]:
    """Write maps and summary all-or-nothing; returns output kind -> path."""
    names = {**OUTPUT_NAMES, **(names or {})}
    px = result.pixel_size_angstrom
    outs = OutputSet(out_dir)
    paths: dict[str, Path] = {}
    def writer(vol: np.ndarray, pixel: float) -> Callable[[Path], object]:
        return lambda p: write_map(p, vol, pixel_size_angstrom=pixel, origin=origin)

    for key, vol in (("full", result.full), ("half1", result.half1), ("half2", result.half2),
                     ("local_resolution", result.local_resolution_angstrom)):
        paths[key] = outs.add(names[key], writer(vol, px))
    if result.band_snr is not None:
        # an MRC volume stack, one coarse volume per band (centres in summary.json "bands")
        coarse_px = px * result.full.shape[-1] / result.band_snr.shape[-1]
        paths["band_snr"] = outs.add(names["band_snr"], writer(result.band_snr, coarse_px))
    summary["outputs"] = {k: str(v) for k, v in paths.items()}
    summary["outputs"]["summary"] = str(out_dir / names["summary"])
    paths["summary"] = outs.add(names["summary"], lambda p: write_json(p, summary))
    outs.commit()
    return paths


def filter_files(half1: Path, half2: Path, *, mask_path: Path | None, out_dir: Path,
                 pixel_size_angstrom: float | None = None, params: FilterParams | None = None,
                 workers: int = 1, backend: str | None = None, device: str = "cpu", report: bool = True,
                 progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Filter two half-map files into ``out_dir``; returns the summary written there.

    Raises
    ------
    InputFileError
        Unreadable or inconsistent inputs, or an unwritable output folder.
    """
    t0 = time.perf_counter()
    out = ensure_output_dir(out_dir)
    m1, m2, mk, px = load_inputs(half1, half2, mask_path, pixel_size_angstrom=pixel_size_angstrom)
    t_read = time.perf_counter() - t0
    origin = m1.origin
    lf = LocalFilter(m1.data.shape, pixel_size_angstrom=px, mask=None if mk is None else mk.data,
                     params=params, workers=workers, backend=backend, device=device)
    # hand the arrays over: the engine drops them once it has their spectra (memory at 256^3)
    halves = [m1.data, m2.data]
    del m1, m2, mk
    result = lf.filter_owned(halves, progress=progress)
    t1 = time.perf_counter()
    summary = summarise(result, inputs={"half1": str(half1), "half2": str(half2),
                                        "mask": None if mask_path is None else str(mask_path)},
                        timings={"read": t_read}, mask=lf.mask)
    write_outputs(result, out, summary=summary, origin=origin)
    if report:
        from locband.report import write_report

        # the report shows the full map and the local resolution: the rest goes before the
        # halves are read again (at 512^3 that keeps this step below the filter's own peak)
        shown = SimpleNamespace(full=result.full, local_resolution_angstrom=result.local_resolution_angstrom)
        del result
        raw = read_map(half1, what="half-map 1").data
        raw += read_map(half2, what="half-map 2").data
        raw *= np.float32(0.5)
        write_report(out, summary=summary, raw=raw, result=shown, mask=lf.mask)
    summary["timings_seconds"]["write"] = round(time.perf_counter() - t1, 4)
    return summary

