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
import time
from pathlib import Path

from locband.commands._common import TerminalProgress
from locband.engine.params import FilterParams
from locband.io.errors import InputFileError

__all__ = ["add_args", "run"]


def add_args(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``locband denoise``."""
    d = FilterParams()
    parser.add_argument("half1", help="half-map 1 (MRC), unfiltered and unmasked")
    parser.add_argument("half2", help="half-map 2 (MRC), unfiltered and unmasked")
    parser.add_argument("--mask", help="soft mask in [0, 1] (MRC): the solvent is flat outside it")
    parser.add_argument("--out-dir", default="locband_denoise", help="output folder (default ./locband_denoise)")
    parser.add_argument("--pixel-size", type=float, default=None, metavar="A",
                        help="voxel size in Å (default: from the half-map headers)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--no-report", action="store_true", help="skip the PNG/PDF report")
    g = parser.add_argument_group("priors and sharpening")
    g.add_argument("--molecular-mass-kda", type=float, default=None, metavar="K",
                   help="mass of the molecule in kDa: its volume (1.23 Å³/Da) sets the solvent boundary")
    sharp = g.add_mutually_exclusive_group()
    sharp.add_argument("--no-sharpen", action="store_true", help="no sharpening (default: local sharpening)")
    sharp.add_argument("--bfactor", type=float, default=None, metavar="B",
                       help="one global B-factor in Å² instead of local sharpening (negative sharpens, as in "
                            "RELION's postprocessing)")
    g.add_argument("--sharpen-from", type=float, default=10.0, metavar="A",
                   help="local sharpening restores the fall-off beyond this resolution in Å (default 10)")
    g.add_argument("--no-positivity", action="store_true", help="do not assume density above the solvent level")
    g.add_argument("--no-solvent-flattening", action="store_true", help="do not assume a flat solvent")
    g.add_argument("--no-connectivity", action="store_true", help="keep small isolated blobs")
    g.add_argument("--no-consistency", action="store_true",
                   help="keep what only one half shows (default: the average is not trusted where the halves "
                        "differ beyond their noise)")
    g.add_argument("--linear-weights", action="store_true",
                   help="no significance weighting: the linear filter's weights (the priors then act only "
                        "through the flat solvent)")
    g.add_argument("--cycles", type=int, default=1, metavar="N",
                   help="density-modification cycles (default 1; more measured no better, see the README)")
    f = parser.add_argument_group("bands and statistics (as for `locband filter`)")
    f.add_argument("--threads", type=int, default=1, metavar="N", help="FFT threads (default 1)")
    f.add_argument("--fft-backend", choices=("pyfftw", "scipy"), default=None,
                   help="FFT implementation (default: pyfftw if installed)")
    f.add_argument("--band-ratio", type=float, default=d.band_ratio, metavar="R",
                   help=f"ratio between band centres (default {d.band_ratio:.4f}, 3 bands per octave)")
    f.add_argument("--window-wavelengths", type=float, default=d.window_wavelengths, metavar="K",
                   help=f"local window sigma in wavelengths of each band (default {d.window_wavelengths})")
    f.add_argument("--noise-threshold", type=float, default=d.noise_threshold, metavar="Z",
                   help=f"suppress local signal below Z noise standard deviations (default {d.noise_threshold})")
    f.add_argument("--criterion", type=float, default=d.criterion, metavar="C",
                   help=f"local FSC threshold for local resolution (default {d.criterion})")


def run(args: argparse.Namespace) -> int:
    """Run ``locband denoise``."""
    from locband.interpretation import denoise_files
    from locband.pipeline import fsc_text

    t0 = time.perf_counter()
    if args.pixel_size is not None and not args.pixel_size > 0:
        raise InputFileError(f"--pixel-size must be > 0 Å, got {args.pixel_size}")
    if args.molecular_mass_kda is not None and not args.molecular_mass_kda > 0:
        raise InputFileError(f"--molecular-mass-kda must be > 0, got {args.molecular_mass_kda}")
    if not args.sharpen_from > 0:
        raise InputFileError(f"--sharpen-from must be > 0 Å, got {args.sharpen_from}")
    if args.threads < 1:
        raise InputFileError(f"--threads must be >= 1, got {args.threads}")
    filt = FilterParams(band_ratio=args.band_ratio, window_wavelengths=args.window_wavelengths,
                        noise_threshold=args.noise_threshold, criterion=args.criterion)
    settings = {"filter": filt, "cycles": args.cycles, "positivity": not args.no_positivity,
                "solvent_flattening": not args.no_solvent_flattening, "connectivity": not args.no_connectivity,
                "significance": not args.linear_weights, "consistency": not args.no_consistency,
                "sharpen_from_angstrom": args.sharpen_from}
    summary = denoise_files(Path(args.half1), Path(args.half2), mask_path=Path(args.mask) if args.mask else None,
                            out_dir=Path(args.out_dir), pixel_size_angstrom=args.pixel_size,
                            molecular_mass_kda=args.molecular_mass_kda, bfactor_angstrom2=args.bfactor,
                            sharpen=not args.no_sharpen, settings=settings, workers=args.threads,
                            backend=args.fft_backend, report=not args.no_report,
                            progress=TerminalProgress(enabled=not args.quiet))
    res = summary["local_resolution_angstrom"]
    print(f"locband denoise: wrote {args.out_dir} (for interpretation, not for averaging) | FSC=0.143 "
          f"{fsc_text(summary)} (unmasked) | local resolution {res['p5']:.2f}-{res['p95']:.2f} Å (5-95 %) | "
          f"{time.perf_counter() - t0:.1f} s")
    return 0
