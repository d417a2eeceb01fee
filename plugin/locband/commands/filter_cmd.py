"""Locally filter two half-maps.

Writes into --out-dir (default ./locband_out, never beside the inputs unless asked):
  filtered.mrc            the locally weighted full map
  filtered_half1.mrc      half 1 weighted on its own (weights from both halves)
  filtered_half2.mrc      half 2
  local_resolution.mrc    local resolution in Å
  band_snr.mrc            per-band local SNR (only with --band-snr; bands stacked along z)
  summary.json            global FSC, bands, settings, timings
  report.png, report.pdf  the report (not with --no-report: a previous run's report is removed)
  locband_manifest.json   written last: the run id, size and SHA-256 of every file of the set

No output may be one of the inputs (checked before any work). The files replace those of an
earlier run all together or not at all. Exit codes: 0 done, 1 bad input or a write error (one
line), 2 usage error, 130 / 143 / 129 after SIGINT / SIGTERM / SIGHUP (previous outputs kept).

For example:
  locband filter run_half1_class001_unfil.mrc run_half2_class001_unfil.mrc --mask mask.mrc --out-dir locband_out
  locband filter h1.mrc h2.mrc --pixel-size 1.06 --threads 4
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from locband.commands._common import TerminalProgress, add_common_filter_args, params_from_args, threads_from_args
from locband.io.errors import InputFileError

__all__ = ["add_args", "run"]


def add_args(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``locband filter``."""
    parser.add_argument("half1", help="half-map 1 (MRC)")
    parser.add_argument("half2", help="half-map 2 (MRC)")
    parser.add_argument("--mask", help="soft mask in [0, 1] (MRC)")
    parser.add_argument("--out-dir", default="locband_out", help="output folder (default ./locband_out)")
    parser.add_argument("--pixel-size", type=float, default=None, metavar="A",
                        help="voxel size in Å (default: from the half-map headers)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--no-report", action="store_true", help="skip the PNG/PDF report")
    add_common_filter_args(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``locband filter``."""
    from locband.pipeline import filter_files, fsc_text

    t0 = time.perf_counter()
    if args.pixel_size is not None and not args.pixel_size > 0:
        raise InputFileError(f"--pixel-size must be > 0 Å, got {args.pixel_size}")
    params = params_from_args(args)
    summary = filter_files(Path(args.half1), Path(args.half2), mask_path=Path(args.mask) if args.mask else None,
                           out_dir=Path(args.out_dir), pixel_size_angstrom=args.pixel_size, params=params,
                           workers=threads_from_args(args), backend=args.fft_backend, device=args.device,
                           report=not args.no_report,
                           progress=TerminalProgress(enabled=not args.quiet))
    res = summary["local_resolution_angstrom"]
    print(f"locband filter: wrote {args.out_dir} | FSC=0.143 {fsc_text(summary)} "
          f"(unmasked) | local resolution {res['p5']:.2f}-{res['p95']:.2f} Å (5-95 %) | "
          f"{summary['n_bands']} bands | {time.perf_counter() - t0:.1f} s")
    return 0
