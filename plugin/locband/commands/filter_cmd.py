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
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from locband.commands._common import add_engine_arguments, engine_from_args
from locband.options import HALF1, HALF2, MASK, OUT_DIR, PIXEL_SIZE, QUIET, REPORT, add_arguments, values_from_namespace
from locband.pipeline import FilterJob, filter_files
from locband.progress import TerminalProgress
from locband.summary import fsc_text

__all__ = ["OPTIONS", "FilterCommand", "add_args", "request_from_args", "run"]

#: the options of ``locband filter`` besides the engine's (:data:`locband.options.ENGINE`)
OPTIONS = (HALF1, HALF2, MASK, dataclasses.replace(OUT_DIR, default="locband_out"), PIXEL_SIZE, QUIET, REPORT)


@dataclass(frozen=True)
class FilterCommand:
    """What ``locband filter`` was asked to do: the run, and whether to show progress."""

    job: FilterJob
    quiet: bool = False


def add_args(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``locband filter``."""
    add_arguments(parser, OPTIONS)
    add_engine_arguments(parser)


def request_from_args(args: argparse.Namespace, extra: Sequence[str] = ()) -> FilterCommand:
    """The parsed options as a request (pure: no file is looked at).

    Raises
    ------
    OptionError
        A value out of range (``--pixel-size``, ``--threads``), named.
    ValueError
        An engine setting out of range.
    """
    v = values_from_namespace(args, OPTIONS)
    job = FilterJob(half1=Path(v["half1"]), half2=Path(v["half2"]), out_dir=Path(v["out_dir"]),
                    mask=Path(v["mask"]) if v["mask"] else None, pixel_size_angstrom=v["pixel_size"],
                    engine=engine_from_args(args), report=v["report"])
    return FilterCommand(job=job, quiet=v["quiet"])


def run(args: argparse.Namespace, extra: Sequence[str] = ()) -> int:
    """Run ``locband filter``."""
    t0 = time.perf_counter()
    req = request_from_args(args, extra)
    summary = filter_files(req.job, progress=TerminalProgress(enabled=not req.quiet))
    res = summary["local_resolution_angstrom"]
    print(f"locband filter: wrote {args.out_dir} | FSC=0.143 {fsc_text(summary)} "
          f"(unmasked) | local resolution {res['p5']:.2f}-{res['p95']:.2f} Å (5-95 %) | "
          f"{summary['n_bands']} bands | {time.perf_counter() - t0:.1f} s")
    return 0
