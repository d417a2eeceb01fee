"""Files in, files out for interpretation maps (``locband denoise``).

One call reads two half-map files (and a mask), runs :class:`locband.engine.denoise.Denoiser`
and writes every output all-or-nothing, so that a host (a RELION External job, cryoSPARC, a
script) can make an interpretation map in one line::

    summary = denoise_files(Path("h1.mrc"), Path("h2.mrc"), mask_path=None, out_dir=Path("out"))

The maps written here are non-linear: for interpretation only, never averaged again or used as
refinement references (their MRC labels say so). The inputs are read and checked exactly as
for ``locband filter`` (:func:`locband.pipeline.load_inputs`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from locband import __version__
from locband.engine.denoise import Denoiser
from locband.engine.params import DenoiseParams, DenoiseResult, FSCCurve
from locband.engine.units import cycles_to_angstrom
from locband.io.atomic import ensure_output_dir
from locband.io.mrc import read_map, write_map
from locband.io.outputs import OutputSet
from locband.io.summary import write_json

__all__ = ["OUTPUT_NAMES", "USE_NOTE", "denoise_files", "summarise_denoise"]

#: output file names inside the output folder
OUTPUT_NAMES = {
    "full": "denoised.mrc",
    "half1": "denoised_half1.mrc",
    "half2": "denoised_half2.mrc",
    "local_resolution": "local_resolution.mrc",
    "summary": "summary.json",
}

#: what every summary says about the maps
USE_NOTE = ("interpretation only: a non-linear map; never average it again or use it as a refinement "
            "reference (use `locband filter` for that)")

_LABELS = {
    "full": ("locband denoise: interpretation map (non-linear)",
             "FOR INTERPRETATION, NOT FOR AVERAGING: never average again or refine against it"),
    "half1": ("locband denoise: half 1 processed alone (cross-validation only)",
              "FOR INTERPRETATION, NOT FOR AVERAGING: never average again or refine against it"),
    "half2": ("locband denoise: half 2 processed alone (cross-validation only)",
              "FOR INTERPRETATION, NOT FOR AVERAGING: never average again or refine against it"),
    "local_resolution": ("locband denoise: local resolution in Angstrom",),
}


def _curve_pair(pair: tuple[FSCCurve, FSCCurve] | None, names: tuple[str, str]) -> dict[str, Any] | None:
    if pair is None:
        return None
    return {names[0]: pair[0].to_dict(), names[1]: pair[1].to_dict()}


def _cross_validation(result: DenoiseResult) -> dict[str, Any]:
    names = ("half1_vs_raw_half2", "half2_vs_raw_half1")
    linear = ("linear_half1_vs_raw_half2", "linear_half2_vs_raw_half1")
    out: dict[str, Any] = {
        "about": ("FSC of each processed half with the raw other half: it uses the other half's local "
                  "statistics but never its voxels, so in each shell it is FSC(processed, truth) x FSC(truth, "
                  "raw other half). Next to it, the same for the linear filter's halves and the raw half-map FSC "
                  "(fsc): where the denoised curve lies above the linear one, the independent half confirms what "
                  "the processing added. Not a resolution. The shared local statistics inflate the linear curve "
                  "slightly more than the denoised one (measured 0.006-0.024 against -0.007-0.013 on synthetic "
                  "data), so at low SNR the linear curve can lie a little above although the map is worse."),
    }
    for which, pair, lin in (("unmasked", result.cross_unmasked, result.cross_linear_unmasked),
                             ("masked", result.cross_masked, result.cross_linear_masked)):
        a, b = _curve_pair(pair, names), _curve_pair(lin, linear)
        out[which] = None if a is None or b is None else {**a, **b}
    return out


def summarise_denoise(result: DenoiseResult, *, inputs: dict[str, str | None], timings: dict[str, float],
                      mask: npt.NDArray[np.float32] | None,
                      physical: dict[str, float | str | None]) -> dict[str, Any]:
    """The JSON summary of one ``locband denoise`` run."""
    px = result.pixel_size_angstrom

    def crossing(curve: FSCCurve | None, thr: float) -> float | None:
        return None if curve is None else float(cycles_to_angstrom(curve.crossing(thr), pixel_size_angstrom=px))

    sel = result.local_resolution_angstrom[mask > 0.5] if mask is not None else result.local_resolution_angstrom
    sel = sel if sel.size else result.local_resolution_angstrom
    pct = {f"p{q}": float(np.percentile(sel, q)) for q in (5, 25, 50, 75, 95)}
    env = result.envelope_volume_voxels
    return {
        "locband_version": __version__,
        "command": "denoise",
        "use": USE_NOTE,
        "map_label": "denoised",
        "inputs": inputs,
        "pixel_size_angstrom": px,
        "shape_zyx": list(result.full.shape),
        "settings": {**result.params.to_dict(), "physical": physical},
        "n_bands": result.bands.n_bands,
        "bands": result.bands.to_dict(),
        "fsc": {"unmasked": result.fsc_unmasked.to_dict(),
                "masked": None if result.fsc_masked is None else result.fsc_masked.to_dict()},
        "fsc_0143_angstrom": {"unmasked": crossing(result.fsc_unmasked, 0.143),
                              "masked": crossing(result.fsc_masked, 0.143)},
        "fsc_05_angstrom": {"unmasked": crossing(result.fsc_unmasked, 0.5),
                            "masked": crossing(result.fsc_masked, 0.5)},
        "cross_validation": _cross_validation(result),
        "local_resolution_angstrom": {**pct, "within": "mask > 0.5" if mask is not None else "whole box",
                                      "criterion": result.params.filter.criterion},
        "envelope_volume_angstrom3": None if env is None else env * px ** 3,
        "timings_seconds": {**{k: round(v, 4) for k, v in result.timings.items()},
                            **{k: round(v, 4) for k, v in timings.items()}},
    }


def _write(result: DenoiseResult, out_dir: Path, summary: dict[str, Any],
           origin: tuple[float, float, float]) -> dict[str, Path]:
    """Write the maps and the summary all-or-nothing; returns output kind -> path."""
    outs = OutputSet(out_dir)
    paths: dict[str, Path] = {}
    px = result.pixel_size_angstrom

    def writer(vol: npt.NDArray[np.float32], labels: tuple[str, ...]) -> Callable[[Path], object]:
        return lambda p: write_map(p, vol, pixel_size_angstrom=px, origin=origin, labels=labels)

    for key, vol in (("full", result.full), ("half1", result.half1), ("half2", result.half2),
                     ("local_resolution", result.local_resolution_angstrom)):
        paths[key] = outs.add(OUTPUT_NAMES[key], writer(vol, _LABELS[key]))
    summary["outputs"] = {k: str(v) for k, v in paths.items()}
    summary["outputs"]["summary"] = str(out_dir / OUTPUT_NAMES["summary"])
    paths["summary"] = outs.add(OUTPUT_NAMES["summary"], lambda p: write_json(p, summary))
    outs.commit()
    return paths


def denoise_files(half1: Path, half2: Path, *, mask_path: Path | None, out_dir: Path,
                  pixel_size_angstrom: float | None = None, molecular_mass_kda: float | None = None,
                  bfactor_angstrom2: float | None = None, sharpen: bool = True,
                  settings: dict[str, Any] | None = None, workers: int = 1, backend: str | None = None,
                  report: bool = True, progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Make the interpretation map of two half-map files into ``out_dir``; returns the summary.

    Parameters
    ----------
    half1, half2 : Path
        Unfiltered, unmasked half-maps (MRC).
    mask_path : Path or None
        Soft mask (MRC); the solvent is flat outside it. Without one the solvent boundary is
        found from each map.
    out_dir : Path
        Output folder (created if needed).
    pixel_size_angstrom : float, optional
        Voxel size; default from the half-map headers.
    molecular_mass_kda : float, optional
        Mass of the molecule (sizes the solvent boundary).
    bfactor_angstrom2 : float, optional
        One global B-factor (negative sharpens) instead of local sharpening.
    sharpen : bool
        False: no sharpening.
    settings : dict, optional
        Other :class:`~locband.engine.params.DenoiseParams` fields (and ``sharpen_from_angstrom``,
        ``envelope_resolution_angstrom``).
    workers : int
        FFT threads.
    backend : {"pyfftw", "scipy"}, optional
        FFT implementation.
    report : bool
        Also write ``report.png`` and ``report.pdf`` (with the cross-validation curves).
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    dict
        The summary written to ``summary.json``.

    Raises
    ------
    InputFileError
        Unreadable or inconsistent inputs, or an unwritable output folder.
    ValueError
        Bad settings.
    """
    from locband.pipeline import load_inputs

    t0 = time.perf_counter()
    out = ensure_output_dir(out_dir)
    m1, m2, mk, px = load_inputs(half1, half2, mask_path, pixel_size_angstrom=pixel_size_angstrom)
    params = DenoiseParams.from_physical(pixel_size_angstrom=px, molecular_mass_kda=molecular_mass_kda,
                                         bfactor_angstrom2=bfactor_angstrom2, sharpen=sharpen, **(settings or {}))
    t_read = time.perf_counter() - t0
    origin = m1.origin
    den = Denoiser(m1.data.shape, pixel_size_angstrom=px, mask=None if mk is None else mk.data, params=params,
                   workers=workers, backend=backend)
    halves = [m1.data, m2.data]  # handed over: the engine drops them once it has their spectra
    del m1, m2, mk
    result = den.denoise_owned(halves, progress=progress)
    t1 = time.perf_counter()
    extra = settings or {}
    physical: dict[str, float | str | None] = {
        "molecular_mass_kda": molecular_mass_kda, "bfactor_angstrom2": bfactor_angstrom2,
        "sharpen": params.sharpen,
        "sharpen_from_angstrom": float(extra.get("sharpen_from_angstrom", 10.0)),
        "envelope_resolution_angstrom": float(extra.get("envelope_resolution_angstrom", 20.0))}
    summary = summarise_denoise(result, inputs={"half1": str(half1), "half2": str(half2),
                                                "mask": None if mask_path is None else str(mask_path)},
                                timings={"read": t_read}, mask=den.mask, physical=physical)
    _write(result, out, summary, origin)
    if report:
        from locband.report import write_report

        raw = read_map(half1, what="half-map 1").data
        raw += read_map(half2, what="half-map 2").data
        raw *= np.float32(0.5)
        write_report(out, summary=summary, raw=raw, result=result, mask=den.mask)
    summary["timings_seconds"]["write"] = round(time.perf_counter() - t1, 4)
    return summary
