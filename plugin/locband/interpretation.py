"""Files in, files out for interpretation maps (``locband denoise``).

One call reads two half-map files (and a mask), runs :class:`locband.engine.denoise.Denoiser`
and writes every output all-or-nothing, so that a host (a RELION External job, cryoSPARC, a
script) can make an interpretation map in one line::

    summary = denoise_files(DenoiseJob(Path("h1.mrc"), Path("h2.mrc"), out_dir=Path("out")))

The maps written here are non-linear: for interpretation only, never averaged again or used as
refinement references (their MRC labels say so). Inputs and outputs are handled exactly as for
``locband filter``: the inputs read and checked by :func:`locband.inputs.load_inputs`, the outputs
(maps, ``summary.json``, the report; names in :data:`locband.output_names.DENOISE`) one set
written by :func:`locband.pipeline.write_outputs`, checked against the inputs before any work and
committed all-or-nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from locband import __version__
from locband.engine.denoise import Denoiser
from locband.engine.denoise_params import DenoiseParams, DenoiseResult
from locband.engine.params import FSCCurve, ProgressCallback
from locband.inputs import load_inputs, naming_engine_errors
from locband.io.outputs import Writer
from locband.options import ENGINE, MASK, DenoiseSettings, EngineSettings, Option
from locband.output_names import DENOISE, INTERPRETATION_PREFIX
from locband.pipeline import OutputPart, mean_of_halves, plan_outputs, write_outputs
from locband.report import report_files
from locband.summary import fsc_entries, local_resolution_percentiles, rounded_timings, within_text

__all__ = ["DenoiseJob", "ENGINE_OPTIONS", "LABELS", "MASK_OPTION", "PROGRESS_SHARE", "USE_NOTE", "denoise_files",
           "interpretation_part", "summarise_denoise"]

#: the engine options that apply to an interpretation map (the bands, the statistics, the FFT on the CPU):
#: it has no mask to apply, no per-band SNR output and no GPU path (:meth:`DenoiseJob.params`)
ENGINE_OPTIONS: tuple[Option, ...] = tuple(o for o in ENGINE if o.name in (
    "band_ratio", "window_wavelengths", "noise_threshold", "criterion", "fft_backend", "threads"))
#: the mask, as an interpretation map uses it
MASK_OPTION = replace(MASK, help="soft mask in [0, 1] (MRC): the solvent is flat outside it")

#: what every summary says about the maps
USE_NOTE = ("interpretation only: a non-linear map; never average it again or use it as a refinement "
            "reference (use `locband filter` for that)")

_NOT_FOR_AVERAGING = "FOR INTERPRETATION, NOT FOR AVERAGING: never average again or refine against it"
#: MRC header labels by output kind
LABELS: dict[str, tuple[str, ...]] = {
    "full": ("locband denoise: interpretation map (non-linear)", _NOT_FOR_AVERAGING),
    "half1": ("locband denoise: half 1 processed alone (cross-validation only)", _NOT_FOR_AVERAGING),
    "half2": ("locband denoise: half 2 processed alone (cross-validation only)", _NOT_FOR_AVERAGING),
    "local_resolution": ("locband denoise: local resolution in Angstrom",),
}
_ENVELOPE_RESOLUTION_ANGSTROM = 20.0
#: the interpretation map's share of the progress of a host run that also filters (it costs about
#: 2.3x the filter, README "Interpretation maps")
PROGRESS_SHARE = 0.7  # DenoiseParams.from_physical's default


@dataclass(frozen=True)
class DenoiseJob:
    """An interpretation map made from files: what to read, how to process, where to write.

    Attributes
    ----------
    half1, half2 : Path
        Unfiltered, unmasked half-maps (MRC).
    out_dir : Path
        Output folder (created only when the outputs are written).
    mask : Path or None
        Soft mask (MRC); the solvent is flat outside it. Without one the solvent boundary is
        found from each map.
    pixel_size_angstrom : float or None
        Voxel size; None: from the half-map headers.
    denoise : DenoiseSettings
        The interpretation map's own settings (mass, sharpening, priors), physical units.
    engine : EngineSettings
        The band and statistics settings (``params``), threads and FFT backend.
    report : bool
        Also write ``report.png`` and ``report.pdf`` (with the cross-validation curves).
    """

    half1: Path
    half2: Path
    out_dir: Path
    mask: Path | None = None
    pixel_size_angstrom: float | None = None
    denoise: DenoiseSettings = field(default_factory=DenoiseSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    report: bool = True

    @property
    def inputs(self) -> dict[str, Path | None]:
        """What the run reads, as the output checks name it."""
        return {"half-map 1": self.half1, "half-map 2": self.half2, "mask": self.mask}

    def params(self, pixel_size_angstrom: float) -> DenoiseParams:
        """The engine's settings at the voxel size of the maps.

        Only the band and statistics settings of :attr:`engine` apply (an interpretation map has
        no mask to apply and no per-band SNR output).

        Raises
        ------
        ValueError
            A setting out of range (named).
        """
        d = self.denoise
        bands = replace(self.engine.params, apply_mask=False, keep_band_snr=False)
        return DenoiseParams.from_physical(pixel_size_angstrom=pixel_size_angstrom,
                                           molecular_mass_kda=d.molecular_mass_kda,
                                           bfactor_angstrom2=d.bfactor_angstrom2, sharpen=d.sharpen,
                                           sharpen_from_angstrom=d.sharpen_from_angstrom, filter=bands,
                                           cycles=d.cycles, positivity=d.positivity,
                                           solvent_flattening=d.solvent_flattening, connectivity=d.connectivity,
                                           consistency=d.consistency, significance=d.significance)

    def physical(self, params: DenoiseParams) -> dict[str, float | str | None]:
        """The settings in physical units, as the summary records them."""
        d = self.denoise
        return {"molecular_mass_kda": d.molecular_mass_kda, "bfactor_angstrom2": d.bfactor_angstrom2,
                "sharpen": params.sharpen, "sharpen_from_angstrom": float(d.sharpen_from_angstrom),
                "envelope_resolution_angstrom": _ENVELOPE_RESOLUTION_ANGSTROM}


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
    """The JSON summary of one ``locband denoise`` run (the vocabulary of :mod:`locband.summary`)."""
    px = result.pixel_size_angstrom
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
        **fsc_entries(result.fsc_unmasked, result.fsc_masked, pixel_size_angstrom=px),
        "cross_validation": _cross_validation(result),
        "local_resolution_angstrom": {**local_resolution_percentiles(result.local_resolution_angstrom, mask),
                                      "within": within_text(mask), "criterion": result.params.filter.criterion},
        "envelope_volume_angstrom3": None if env is None else env * px ** 3,
        "timings_seconds": rounded_timings(result.timings, timings),
    }


def interpretation_part(job: DenoiseJob, *, prefix: str = INTERPRETATION_PREFIX,
                        progress: ProgressCallback | None = None) -> OutputPart:
    """Read the half-maps of ``job`` and make their interpretation map, ready to be written.

    The result, its summary and its report, as one :class:`~locband.pipeline.OutputPart`: a
    host writes it beside the linear filter's maps (``write_outputs(..., parts=[part])``, kinds
    with ``prefix`` in the set's names, :data:`locband.output_names.INTERPRETATION`), and
    :func:`denoise_files` writes it alone. ``job.out_dir`` is not used here.

    Raises
    ------
    InputFileError
        Unreadable or inconsistent inputs.
    ValueError
        Bad settings.
    """
    t0 = time.perf_counter()
    m1, m2, mk, px = load_inputs(job.half1, job.half2, job.mask, pixel_size_angstrom=job.pixel_size_angstrom)
    params = job.params(px)
    t_read = time.perf_counter() - t0
    origin = m1.origin
    with naming_engine_errors(job.half1, job.half2):
        den = Denoiser(m1.data.shape, pixel_size_angstrom=px, mask=None if mk is None else mk.data, params=params,
                       workers=job.engine.workers(), backend=job.engine.fft_backend)
        halves = [m1.data, m2.data]  # handed over: the engine drops them once it has their spectra
        del m1, m2, mk
        result = den.denoise_owned(halves, progress=progress)
    summary = summarise_denoise(result, inputs={"half1": str(job.half1), "half2": str(job.half2),
                                                "mask": None if job.mask is None else str(job.mask)},
                                timings={"read": t_read}, mask=den.mask, physical=job.physical(params))

    def draw(summary: dict[str, Any]) -> Mapping[str, Writer]:
        return report_files(summary=summary, raw=mean_of_halves(job.half1, job.half2), filtered=result.full,
                            local_resolution=result.local_resolution_angstrom, mask=den.mask)

    return OutputPart(prefix, result, summary, report=draw if job.report else None, labels=LABELS, origin=origin)


def denoise_files(job: DenoiseJob, *, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Make the interpretation map of two half-map files into ``job.out_dir``; returns the summary.

    Raises
    ------
    InputFileError
        Unreadable or inconsistent inputs.
    OutputFileError
        An output that would overwrite an input, an unwritable output folder, or a write error
        (the message names the file).
    ValueError
        Bad settings.
    """
    outs = plan_outputs(job.out_dir, inputs=job.inputs, names=DENOISE)
    part = interpretation_part(job, prefix="", progress=progress)
    t1 = time.perf_counter()
    write_outputs(part.result, outs, summary=part.summary, names=DENOISE, origin=part.origin, report=part.report,
                  labels=part.labels)
    part.summary["timings_seconds"]["write"] = round(time.perf_counter() - t1, 4)
    return part.summary
