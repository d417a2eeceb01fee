"""Files in, files out for interpretation maps (``locband denoise``).

One call reads two half-map files (and a mask), runs :class:`locband.engine.denoise.Denoiser`
and writes every output all-or-nothing, so that a host (a RELION External job, cryoSPARC, a
script) can make an interpretation map in one line::

    summary = denoise_files(Path("h1.mrc"), Path("h2.mrc"), mask_path=None, out_dir=Path("out"))

The maps written here are non-linear: for interpretation only, never averaged again or used as
refinement references (their MRC labels say so). Inputs and outputs are handled exactly as for
``locband filter``: the inputs read and checked by :func:`locband.pipeline.load_inputs`, the
outputs (maps, ``summary.json``, the report) one :class:`~locband.io.outputs.OutputSet`,
checked against the inputs before any work and committed all-or-nothing.
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
from locband.engine.units import fsc_resolution_angstrom
from locband.io.mrc import read_map, write_map
from locband.io.outputs import OutputSet, Writer
from locband.io.summary import write_json

__all__ = ["OUTPUT_NAMES", "USE_NOTE", "denoise_files", "plan_outputs", "summarise_denoise"]

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
    curves = {"unmasked": result.fsc_unmasked, "masked": result.fsc_masked}
    # as locband filter's summary: None where not reached, the status says crossing or bound
    fsc_res = {thr: {k: (None, None) if c is None else fsc_resolution_angstrom(c, thr, pixel_size_angstrom=px)
                     for k, c in curves.items()} for thr in (0.143, 0.5)}

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
        "fsc_0143_angstrom": {k: v for k, (v, _) in fsc_res[0.143].items()},
        "fsc_05_angstrom": {k: v for k, (v, _) in fsc_res[0.5].items()},
        "fsc_crossing": {key: {k: status for k, (_, status) in fsc_res[thr].items()}
                         for key, thr in (("0143", 0.143), ("05", 0.5))},
        "cross_validation": _cross_validation(result),
        "local_resolution_angstrom": {**pct, "within": "mask > 0.5" if mask is not None else "whole box",
                                      "criterion": result.params.filter.criterion},
        "envelope_volume_angstrom3": None if env is None else env * px ** 3,
        "timings_seconds": {**{k: round(v, 4) for k, v in result.timings.items()},
                            **{k: round(v, 4) for k, v in timings.items()}},
    }


def plan_outputs(out_dir: Path, *, half1: Path, half2: Path, mask: Path | None) -> OutputSet:
    """The output set of one ``locband denoise`` run, checked before any work (as for ``locband filter``).

    Raises
    ------
    OutputFileError
        An output would overwrite an input, a folder holds an output name, or the output folder
        cannot be written.
    """
    from locband.report import REPORT_NAMES

    outs = OutputSet(out_dir, inputs={"half-map 1": half1, "half-map 2": half2, "mask": mask},
                     owned=[*OUTPUT_NAMES.values(), *REPORT_NAMES.values()])
    outs.check()
    return outs


def _write(result: DenoiseResult, outs: OutputSet, summary: dict[str, Any], origin: tuple[float, float, float],
           report: Callable[[dict[str, Any]], dict[str, Writer]] | None) -> dict[str, Path]:
    """Write the maps, the summary and the report as one set; returns output kind -> path."""
    paths: dict[str, Path] = {}
    px = result.pixel_size_angstrom

    def writer(vol: npt.NDArray[np.float32], labels: tuple[str, ...]) -> Writer:
        return lambda p: write_map(p, vol, pixel_size_angstrom=px, origin=origin, labels=labels)

    for key, vol in (("full", result.full), ("half1", result.half1), ("half2", result.half2),
                     ("local_resolution", result.local_resolution_angstrom)):
        paths[key] = outs.add(OUTPUT_NAMES[key], writer(vol, _LABELS[key]))
    paths["summary"] = outs.add(OUTPUT_NAMES["summary"], lambda p: write_json(p, summary))
    summary["run_id"] = outs.run_id
    summary["outputs"] = {k: str(v) for k, v in paths.items()}
    if report is not None:
        from locband.report import REPORT_NAMES

        summary["outputs"].update({f"report_{k}": str(outs.out_dir / v) for k, v in REPORT_NAMES.items()})
        for name, w in report(summary).items():
            outs.add(name, w)
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
        Unreadable or inconsistent inputs, an output that would overwrite an input, an
        unwritable output folder, or a write error (the message names the file).
    ValueError
        Bad settings.
    """
    from locband.pipeline import load_inputs, naming_engine_errors

    t0 = time.perf_counter()
    outs = plan_outputs(out_dir, half1=half1, half2=half2, mask=mask_path)
    m1, m2, mk, px = load_inputs(half1, half2, mask_path, pixel_size_angstrom=pixel_size_angstrom)
    params = DenoiseParams.from_physical(pixel_size_angstrom=px, molecular_mass_kda=molecular_mass_kda,
                                         bfactor_angstrom2=bfactor_angstrom2, sharpen=sharpen, **(settings or {}))
    t_read = time.perf_counter() - t0
    origin = m1.origin
    with naming_engine_errors(half1, half2):
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

    def report_files(summary: dict[str, Any]) -> dict[str, Writer]:
        from locband.report import report_outputs

        raw = read_map(half1, what="half-map 1").data
        raw += read_map(half2, what="half-map 2").data
        raw *= np.float32(0.5)
        return report_outputs(summary=summary, raw=raw, filtered=result.full,
                              local_resolution=result.local_resolution_angstrom, mask=den.mask)

    _write(result, outs, summary, origin, report_files if report else None)
    summary["timings_seconds"]["write"] = round(time.perf_counter() - t1, 4)
    return summary
