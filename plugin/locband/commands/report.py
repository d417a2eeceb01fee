r"""Regenerate the report (report.png, report.pdf) of a finished run.

Reads summary.json, filtered.mrc and local_resolution.mrc from OUT_DIR, and the input
half-maps and mask named in summary.json (or given here), and writes report.png and
report.pdf into OUT_DIR. `locband filter` and the RELION External job write the report
already; use this after moving the files, or with other half-maps for the input panels.
OUT_DIR must hold one complete set of outputs (its locband_manifest.json matches every file):
a folder left incomplete by a killed run is refused with the reason, exit 1.

For example:
  locband report locband_out
  locband report External/job012 --half1 Refine3D/job010/run_half1_class001_unfil.mrc \
      --half2 Refine3D/job010/run_half2_class001_unfil.mrc --mask MaskCreate/job011/mask.mrc
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from locband.errors import InputFileError, OptionError
from locband.io.mrc import read_map
from locband.io.outputs import OutputSet, require_complete_set
from locband.io.paths import is_dir, is_file
from locband.io.summary import read_run_summary
from locband.options import Option, add_arguments, values_from_namespace
from locband.output_names import FILTER, REPORT
from locband.pipeline import add_report, mean_of_halves

__all__ = ["OPTIONS", "ReportRequest", "add_args", "request_from_args", "run", "redraw"]


#: the options of ``locband report``
OPTIONS = (
    Option("out_dir", "path", "output folder of a locband run", flag="", metavar="OUT_DIR", required=True),
    Option("half1", "path", "half-map 1 for the input panels (default: as in summary.json)", flag="--half1"),
    Option("half2", "path", "half-map 2 for the input panels (default: as in summary.json)", flag="--half2"),
    Option("mask", "path", "mask for the histogram and overlay (default: as in summary.json)"),
)


def add_args(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``locband report``."""
    add_arguments(parser, OPTIONS)


@dataclass(frozen=True)
class ReportRequest:
    """What ``locband report`` was asked to do."""

    out_dir: Path
    half1: str | None = None
    half2: str | None = None
    mask: str | None = None


def request_from_args(args: argparse.Namespace, extra: Sequence[str] = ()) -> ReportRequest:
    """The parsed options as a request (pure).

    Raises
    ------
    OptionError
        Only one of ``--half1`` and ``--half2``.
    """
    v = values_from_namespace(args, OPTIONS)
    if (v["half1"] is None) != (v["half2"] is None):
        raise OptionError("give both --half1 and --half2, or neither (then summary.json names them)")
    return ReportRequest(out_dir=Path(v["out_dir"]), half1=v["half1"], half2=v["half2"], mask=v["mask"])


def run(args: argparse.Namespace, extra: Sequence[str] = ()) -> int:
    """Run ``locband report``."""
    req = request_from_args(args, extra)
    paths = redraw(req.out_dir, half1=req.half1, half2=req.half2, mask=req.mask)
    print(f"locband report: wrote {', '.join(str(p) for p in paths)}")
    return 0


def _optional_map(path: str | None, what: str) -> npt.NDArray[np.float32] | None:
    return read_map(path, what=what).data if path and is_file(path) else None


def redraw(out: Path, *, half1: str | None = None, half2: str | None = None, mask: str | None = None) -> list[Path]:
    """Regenerate the report of a finished run from the files in ``out``; returns the files written.

    The input half-maps and mask are those named in ``summary.json`` unless given here; if the
    half-maps cannot be found the input panels say so and the rest is drawn.

    Raises
    ------
    InputFileError
        ``out`` holds no readable ``summary.json``, ``filtered.mrc`` or ``local_resolution.mrc``,
        holds an incomplete set (a run was killed while replacing its files), or a report name
        is one of the inputs.
    """
    if not is_dir(out):
        raise InputFileError(f"output folder {str(out)!r} does not exist or is not a folder")
    summary = read_run_summary(out / FILTER["summary"], required=("pixel_size_angstrom", "fsc"))
    inputs = summary.get("inputs") or {}
    h1, h2 = half1 or inputs.get("half1"), half2 or inputs.get("half2")
    mpath = mask or inputs.get("mask")
    named = {"half-map 1": h1, "half-map 2": h2, "mask": mpath}
    # before reading anything: the redrawn report must not replace an input, and the folder
    # must hold one complete set (a run killed while replacing its files is refused here)
    report_names = [FILTER[k] for k in REPORT]
    OutputSet(out, inputs=named, owned=report_names, extend=True).check()
    require_complete_set(out, ignore=report_names)
    raw = mean_of_halves(Path(h1), Path(h2)) if h1 and h2 and is_file(h1) and is_file(h2) else None
    filtered = read_map(out / FILTER["full"], what="filtered map").data
    local_res = read_map(out / FILTER["local_resolution"], what="local-resolution map").data
    return add_report(out, summary=summary, raw=raw, filtered=filtered, local_resolution=local_res,
                      mask=_optional_map(mpath, "mask"), inputs=named)
