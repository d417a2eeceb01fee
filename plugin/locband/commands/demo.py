"""Run locband on a built-in synthetic particle with a known truth.

Makes a particle with a rigid (sharp) half and a flexible (blurred) half, adds independent
noise to two half-maps, writes them with the truth and a mask into --out-dir (default
./locband_demo), runs the same filtering as `locband filter`, and prints how close the raw
average, the global FSC (Wiener) filter and locband come to the truth in each region.

Example:
  locband demo
  locband demo --box 96 --noise 1.5 --out-dir /tmp/demo
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.commands._common import add_engine_arguments, engine_from_args
from locband.engine.metrics import real_space_correlation
from locband.engine.synthetic import SyntheticPair, synthetic_pair
from locband.engine.wiener import global_wiener_filter
from locband.errors import OptionError
from locband.io.atomic import ensure_output_dir
from locband.io.mrc import read_map, write_map
from locband.io.outputs import OutputSet
from locband.options import OUT_DIR, QUIET, REPORT, EngineSettings, Option, add_arguments, values_from_namespace
from locband.pipeline import FilterJob, filter_files
from locband.progress import TerminalProgress

__all__ = ["OPTIONS", "DemoRequest", "add_args", "request_from_args", "run"]

_PIXEL_SIZE = 1.5  # Å; a typical binned single-particle map
_BOX_RANGE = (16, 512)  # voxels: smaller shows nothing, larger takes minutes

#: the options of ``locband demo`` besides the engine's
OPTIONS = (
    dataclasses.replace(OUT_DIR, default="locband_demo"),
    Option("box", "integer", "box edge in voxels", default=64, metavar="N"),
    Option("noise", "positive", "noise level of each half", default=1.0, metavar="S"),
    Option("seed", "integer", "random seed", default=0, metavar="N"),
    QUIET,
    REPORT,
)


@dataclass(frozen=True)
class DemoRequest:
    """What ``locband demo`` was asked to do."""

    out_dir: Path
    box: int = 64
    noise: float = 1.0
    seed: int = 0
    quiet: bool = False
    report: bool = True
    engine: EngineSettings = field(default_factory=EngineSettings)


def add_args(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``locband demo``."""
    add_arguments(parser, OPTIONS)
    add_engine_arguments(parser)


def request_from_args(args: argparse.Namespace, extra: Sequence[str] = ()) -> DemoRequest:
    """The parsed options as a request (pure).

    Raises
    ------
    OptionError
        ``--box`` outside 16-512 or ``--noise`` not > 0.
    """
    v = values_from_namespace(args, OPTIONS)
    if not _BOX_RANGE[0] <= v["box"] <= _BOX_RANGE[1]:
        raise OptionError(f"--box must be between {_BOX_RANGE[0]} and {_BOX_RANGE[1]} voxels, got {v['box']}")
    return DemoRequest(out_dir=Path(v["out_dir"]), box=v["box"], noise=v["noise"], seed=v["seed"], quiet=v["quiet"],
                       report=v["report"], engine=engine_from_args(args))


def _write(path: Path, *, vol: npt.NDArray[np.float32]) -> None:
    write_map(path, vol, pixel_size_angstrom=_PIXEL_SIZE)


def _write_inputs(out: Path, pair: SyntheticPair) -> dict[str, Path]:
    """The demo's inputs (not an output set of a run: no manifest)."""
    inputs = OutputSet(out, manifest=False)
    files = {name: inputs.add(f"demo_{name}.mrc", functools.partial(_write, vol=getattr(pair, name)))
             for name in ("half1", "half2", "truth", "mask")}
    inputs.commit()
    return files


def _print_quality(req: DemoRequest, pair: SyntheticPair, summary: dict[str, Any], threads: int) -> None:
    outputs = summary["outputs"]
    filtered = read_map(Path(outputs["full"])).data
    glob, _, _ = global_wiener_filter(pair.half1, pair.half2, mask=pair.mask, workers=threads)
    raw = (pair.half1 + pair.half2) * np.float32(0.5)
    print(f"locband demo: {req.box}^3 synthetic particle, rigid half sharp, flexible half blurred by "
          f"{pair.blur_sigma_voxels['flexible']:.1f} voxels; outputs in {req.out_dir}")
    print("correlation with the truth   raw average   global FSC filter   locband")
    for region in ("rigid", "flexible"):
        m = pair.regions[region]
        cc = [real_space_correlation(v, pair.truth, weights=m) for v in (raw, glob, filtered)]
        print(f"  {region:<26} {cc[0]:11.3f} {cc[1]:19.3f} {cc[2]:9.3f}   "
              f"(locband {cc[2] - cc[1]:+.3f} vs global, {cc[2] - cc[0]:+.3f} vs raw)")
    local_res = read_map(Path(outputs["local_resolution"])).data
    res = summary["local_resolution_angstrom"]
    print(f"local resolution (median) rigid {np.median(local_res[pair.regions['rigid']]):.2f} Å, "
          f"flexible {np.median(local_res[pair.regions['flexible']]):.2f} Å; "
          f"within the mask {res['p5']:.2f}-{res['p95']:.2f} Å", end="")


def run(args: argparse.Namespace, extra: Sequence[str] = ()) -> int:
    """Run ``locband demo``."""
    t0 = time.perf_counter()
    req = request_from_args(args, extra)
    out = ensure_output_dir(req.out_dir)
    pair = synthetic_pair((req.box,) * 3, kind="rigid_flexible", noise_std=req.noise, seed=req.seed)
    files = _write_inputs(out, pair)
    threads = req.engine.workers()  # the same for the filter and for the global filter it is compared with
    job = FilterJob(half1=files["half1"], half2=files["half2"], out_dir=out, mask=files["mask"],
                    engine=dataclasses.replace(req.engine, threads=threads), report=req.report)
    summary = filter_files(job, progress=TerminalProgress(enabled=not req.quiet))
    _print_quality(req, pair, summary, threads)
    print(f" | {time.perf_counter() - t0:.1f} s")
    return 0
