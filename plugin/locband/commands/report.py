r"""Regenerate the report (report.png, report.pdf) of a finished run.

Reads summary.json, filtered.mrc and local_resolution.mrc from OUT_DIR, and the input
half-maps and mask named in summary.json (or given here), and writes report.png and
report.pdf into OUT_DIR. `locband filter` and the RELION External job write the report
already; use this after moving the files, or with other half-maps for the input panels.
OUT_DIR must hold one complete set of outputs (its locband_manifest.json matches every file):
a folder left incomplete by a killed run is refused with the reason, exit 1.

Examples:
  locband report locband_out
  locband report External/job012 --half1 Refine3D/job010/run_half1_class001_unfil.mrc \
      --half2 Refine3D/job010/run_half2_class001_unfil.mrc --mask MaskCreate/job011/mask.mrc
"""

from __future__ import annotations

import argparse

__all__ = ["add_args", "run"]


def add_args(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``locband report``."""
    parser.add_argument("out_dir", metavar="OUT_DIR", help="output folder of a locband run")
    parser.add_argument("--half1", help="half-map 1 for the input panels (default: as in summary.json)")
    parser.add_argument("--half2", help="half-map 2 for the input panels (default: as in summary.json)")
    parser.add_argument("--mask", help="mask for the histogram and overlay (default: as in summary.json)")


def run(args: argparse.Namespace) -> int:
    """Run ``locband report``."""
    from locband.errors import InputFileError
    from locband.report import report_from_files

    if (args.half1 is None) != (args.half2 is None):
        raise InputFileError("give both --half1 and --half2, or neither (then summary.json names them)")
    paths = report_from_files(args.out_dir, half1=args.half1, half2=args.half2, mask=args.mask)
    print(f"locband report: wrote {', '.join(str(p) for p in paths)}")
    return 0
