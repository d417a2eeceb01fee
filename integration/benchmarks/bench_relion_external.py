"""How much the RELION External job adds on top of the filter itself: report and plumbing.

Runs the whole job (``locband relion-external``) on synthetic half-maps and prints, per box size,
the seconds spent in the engine, in the whole job without the report (reading, filtering,
writing maps, nodes and exit file), and in drawing the report (PNG + PDF) afterwards. The
report is on by default in the External job, so its cost matters for small boxes.

    PYTHONPATH=plugin python integration/benchmarks/bench_relion_external.py [64 96 128]
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

from locband.adapters import relion_external
from locband.commands.relion_external import parse_argv
from locband.commands.report import redraw
from locband.engine.synthetic import synthetic_pair
from locband.io.mrc import write_map
from locband.io.summary import read_json


def bench(n: int, root: Path) -> dict[str, float]:
    """Time one External job on an n^3 box; returns seconds per stage."""
    pair = synthetic_pair((n, n, n), noise_std=1.0, seed=n)
    ref = root / f"Refine3D_{n}"
    ref.mkdir()
    write_map(ref / "run_half1_class001_unfil.mrc", pair.half1, pixel_size_angstrom=1.0)
    write_map(ref / "run_half2_class001_unfil.mrc", pair.half2, pixel_size_angstrom=1.0)
    write_map(ref / "mask.mrc", pair.mask, pixel_size_angstrom=1.0)
    out = root / f"External_{n}"
    t0 = time.perf_counter()
    argv = ["--o", f"{out}/", "--in_3dref", str(ref), "--in_mask", str(ref / "mask.mrc"), "--j", "2", "--report", "no"]
    rc = relion_external.run_job(f"{out}/", lambda: parse_argv(argv), stdout=io.StringIO(), stderr=sys.stderr)
    job = time.perf_counter() - t0
    assert rc == 0
    t0 = time.perf_counter()
    redraw(out)  # reads the maps back and draws PNG + PDF: what the job adds by default
    report = time.perf_counter() - t0
    filt = read_json(out / "summary.json")["timings_seconds"]["total"]
    return {"filter": filt, "job": job, "report": report}


def main(argv: list[str]) -> int:
    """Print one line per box size."""
    sizes = [int(a) for a in argv] or [64, 96, 128]
    print(f"{'box':>5} {'engine s':>9} {'whole job s (no report)':>24} {'report s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            t = bench(n, Path(tmp))
            print(f"{n:>5} {t['filter']:>9.2f} {t['job']:>24.2f} {t['report']:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
