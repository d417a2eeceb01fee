"""How much the RELION External job adds on top of the filter itself: report and plumbing.

Runs the whole job (``locband relion-external``) on synthetic half-maps and prints, per box size,
the seconds spent in the engine, in the whole job without the report (reading, filtering,
writing maps, nodes and exit file), and in drawing the report (PNG + PDF) afterwards. The
report is on by default in the External job, so its cost matters for small boxes.

    PYTHONPATH=plugin python integration/benchmarks/bench_relion_external.py [64 96 128]

With ``--interpretation N`` it instead compares, at N^3, the job without and with the job
parameter ``interpretation yes`` (the interpretation map made in the same run): each variant in a
fresh process, twice, alternating; CPU seconds (user + system, the fair measure on a shared
machine) and the process's peak memory, the least CPU time kept.

    PYTHONPATH=plugin python integration/benchmarks/bench_relion_external.py --interpretation 192
"""

from __future__ import annotations

import io
import resource
import subprocess
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


def _one_job(ref: Path, out: Path, interpretation: str) -> None:
    """Child process: one External job on the maps in ``ref``; prints its CPU seconds and peak MiB."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    argv = ["--o", f"{out}/", "--in_3dref", str(ref), "--in_mask", str(ref / "mask.mrc"), "--j", "2",
            "--report", "no", "--interpretation", interpretation]
    rc = relion_external.run_job(f"{out}/", lambda: parse_argv(argv), stdout=io.StringIO(), stderr=sys.stderr)
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert rc == 0
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark across fork and exec
    with open("/proc/self/status") as fh:
        peak_mb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024
    print(f"{cpu:.3f} {peak_mb:.0f}")


def compare_interpretation(n: int, repeats: int = 2) -> None:
    """Print the job's CPU time and peak without and with the interpretation map, at n^3."""
    best: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pair = synthetic_pair((n, n, n), noise_std=1.0, seed=n)
        ref = Path(tmp) / "Refine3D"
        ref.mkdir()
        for name, vol in (("run_half1_class001_unfil.mrc", pair.half1), ("run_half2_class001_unfil.mrc", pair.half2),
                          ("mask.mrc", pair.mask)):
            write_map(ref / name, vol, pixel_size_angstrom=1.0)
        del pair
        for i in range(repeats):
            for variant in ("no", "yes"):
                out = Path(tmp) / f"External_{variant}_{i}"
                done = subprocess.run([sys.executable, __file__, "--child", str(ref), str(out), variant],
                                      check=True, capture_output=True, text=True)
                cpu, peak = (float(x) for x in done.stdout.split()[-2:])
                if variant not in best or cpu < best[variant][0]:
                    best[variant] = (cpu, peak)
    print(f"RELION External job at {n}^3, --j 2, no report, each in a fresh process: CPU s of the job (imports "
          f"not counted), peak of the process; least CPU of {repeats} runs each")
    for variant in ("no", "yes"):
        print(f"  interpretation {variant:<4} {best[variant][0]:>7.2f} CPU s {best[variant][1]:>7.0f} MiB peak")
    print(f"  with / without: {best['yes'][0] / best['no'][0]:.2f}x CPU")


def main(argv: list[str]) -> int:
    """Print one line per box size (or the interpretation comparison, or one child's figures)."""
    if argv[:1] == ["--child"]:
        _one_job(Path(argv[1]), Path(argv[2]), argv[3])
        return 0
    if argv[:1] == ["--interpretation"]:
        compare_interpretation(int(argv[1]) if len(argv) > 1 else 192)
        return 0
    sizes = [int(a) for a in argv] or [64, 96, 128]
    print(f"{'box':>5} {'engine s':>9} {'whole job s (no report)':>24} {'report s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            t = bench(n, Path(tmp))
            print(f"{n:>5} {t['filter']:>9.2f} {t['job']:>24.2f} {t['report']:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
