"""Make an interpretation map from two half-maps (non-linear: never average it again).

Model-free density modification: every band weighted voxel by voxel by how certain it is to be
signal, with the real-space priors (positive density, flat solvent, expected volume,
connectivity) deciding where the data say little; locally sharpened where the bands are
significant. Each half is also processed on its own (using the other half's statistics, never
its voxels) and compared with the raw other half: summary.json and the report show what the
processing added. For references that are averaged again (refinement) use `locband filter`.

Writes into --out-dir (default ./locband_denoise):
  denoised.mrc            the interpretation map
  denoised_half1.mrc      half 1 processed on its own (cross-validation)
  denoised_half2.mrc      half 2 processed on its own (cross-validation)
  local_resolution.mrc    local resolution in Å
  summary.json            FSC of the raw halves, cross-validation FSCs, settings, timings
  report.png, report.pdf  FSC and cross-validation curves, local resolution, slices

For example:
  locband denoise run_half1_class001_unfil.mrc run_half2_class001_unfil.mrc --mask mask.mrc
  locband denoise h1.mrc h2.mrc --molecular-mass-kda 450 --out-dir interp
  locband denoise h1.mrc h2.mrc --bfactor -50        # one global B-factor instead of local sharpening
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from locband.interpretation import ENGINE_OPTIONS, MASK_OPTION, DenoiseJob, denoise_files
from locband.options import (
    DENOISE,
    HALF1,
    HALF2,
    OUT_DIR,
    PIXEL_SIZE,
    QUIET,
    REPORT,
    DenoiseSettings,
    EngineSettings,
    add_arguments,
    values_from_namespace,
)
from locband.progress import TerminalProgress
from locband.summary import fsc_text

__all__ = ["OPTIONS", "PRIORS", "SHARPENING", "ENGINE_OPTIONS", "DenoiseCommand", "add_args", "request_from_args",
           "run"]

#: the files and the run, as for ``locband filter``
OPTIONS = (HALF1, HALF2, MASK_OPTION, dataclasses.replace(OUT_DIR, default="locband_denoise"), PIXEL_SIZE, QUIET,
           REPORT)
#: one of two ways to sharpen (or none): mutually exclusive on the command line
SHARPENING = tuple(o for o in DENOISE if o.name in ("sharpen", "bfactor"))
#: the real-space priors and the rest of the interpretation settings (:data:`locband.options.DENOISE`)
PRIORS = tuple(o for o in DENOISE if o not in SHARPENING)


@dataclass(frozen=True)
class DenoiseCommand:
    """What ``locband denoise`` was asked to do: the job, and whether to show progress."""

    job: DenoiseJob
    quiet: bool = False


def add_args(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``locband denoise``."""
    add_arguments(parser, OPTIONS)
    g = parser.add_argument_group("priors and sharpening")
    add_arguments(g.add_mutually_exclusive_group(), SHARPENING)
    add_arguments(g, PRIORS)
    add_arguments(parser.add_argument_group("bands and statistics (as for `locband filter`)"), ENGINE_OPTIONS)


def request_from_args(args: argparse.Namespace, extra: Sequence[str] = ()) -> DenoiseCommand:
    """The parsed options as a request (pure: no file is looked at).

    Raises
    ------
    OptionError
        A value out of range (named).
    ValueError
        A band or statistics setting out of range.
    """
    v = values_from_namespace(args, OPTIONS)
    denoise = DenoiseSettings.from_values(values_from_namespace(args, DENOISE))
    engine = EngineSettings.from_values(values_from_namespace(args, ENGINE_OPTIONS))
    job = DenoiseJob(half1=Path(v["half1"]), half2=Path(v["half2"]), out_dir=Path(v["out_dir"]),
                     mask=Path(v["mask"]) if v["mask"] else None, pixel_size_angstrom=v["pixel_size"],
                     denoise=denoise, engine=engine, report=v["report"])
    return DenoiseCommand(job=job, quiet=v["quiet"])


def run(args: argparse.Namespace, extra: Sequence[str] = ()) -> int:
    """Run ``locband denoise``."""
    t0 = time.perf_counter()
    req = request_from_args(args, extra)
    summary = denoise_files(req.job, progress=TerminalProgress(enabled=not req.quiet))
    res = summary["local_resolution_angstrom"]
    print(f"locband denoise: wrote {args.out_dir} (for interpretation, not for averaging) | FSC=0.143 "
          f"{fsc_text(summary)} (unmasked) | local resolution {res['p5']:.2f}-{res['p95']:.2f} Å (5-95 %) | "
          f"{time.perf_counter() - t0:.1f} s")
    return 0
