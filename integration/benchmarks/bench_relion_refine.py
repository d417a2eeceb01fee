"""Benchmark: RELION 3.1 auto-refine to convergence with and without the locband hook.

Builds the synthetic data set of ``integration/relion_phantom.py`` (a rigid body and a flexible
domain in several conformations, CTF, white noise, known orientations), then runs
``mpirun -n 3 relion_refine_mpi --auto_refine --split_random_halves`` twice from the same 30 Å
reference: once with RELION's own reconstruction, once with ``--external_reconstruct`` and the
locband hook. For each run it prints

- RELION's final resolution (gold-standard FSC = 0.143, unmasked, from run.out),
- the FSC of the final ``run_class001.mrc`` against the true (mean) volume, 0.5 and 0.143 crossings
  in Å, unmasked and with a soft mask around the particle, and the 0.5 crossing inside soft masks
  of the rigid body and of the space the flexible domain sweeps,
- the mean (and median) angular error of the particles against their true orientations
  (geodesic angle between rotation matrices),
- iterations, wall time, and mean wall time per iteration,
- for the hook run: the hook's time per call (its STAR file's mtime to its result map's mtime,
  i.e. what RELION waited for) next to ``relion_external_reconstruct``'s time on the same STAR
  files (RELION's own MAP reconstruction, gridding included, as relion_refine does it).

Usage::

    python integration/benchmarks/bench_relion_refine.py --quick            # ~4 min on 2 cores
    nohup python integration/benchmarks/bench_relion_refine.py > bench.log &  # longer, larger data set

Results also go to ``<out>/bench_relion_refine.json``. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1] / "plugin")]

import numpy as np  # noqa: E402
import relion_phantom  # noqa: E402
import relion_runner  # noqa: E402
import relion_scoring  # noqa: E402
import starfile  # noqa: E402

QUICK = relion_phantom.DatasetSpec()  # the CI data set: 400 particles, 40 px, 3 Å/px
FULL = relion_phantom.DatasetSpec(box=48, pixel_size_angstrom=2.5, n_particles=1200, snr=0.2)


def _final_resolution(run: relion_runner.RefineRun) -> float:
    m = re.findall(r"Final resolution \(without masking\) is: ([\d.]+)", run.stdout)
    return float(m[-1]) if m else float("nan")


def _iteration_times(out_dir: Path) -> list[float]:
    """Seconds between successive ``run_itNNN_data.star`` files (one per iteration, written by the leader)."""
    stamps = sorted((int(p.name[6:9]), p.stat().st_mtime) for p in out_dir.glob("run_it[0-9][0-9][0-9]_data.star"))
    final = out_dir / "run_data.star"
    if final.exists():
        stamps.append((stamps[-1][0] + 1, final.stat().st_mtime))
    return [b[1] - a[1] for a, b in zip(stamps, stamps[1:])]


def _hook_call_times(out_dir: Path) -> dict[str, float]:
    """Per hook call: from RELION writing the STAR file to the hook's map being in place (what RELION waits for)."""
    out = {}
    for star in sorted(out_dir.glob("run_it*_external_reconstruct.star")):
        result = star.with_suffix(".mrc")
        if result.exists():
            out[star.name] = result.stat().st_mtime - star.stat().st_mtime
    return out


def _hook_logged_times(out_dir: Path) -> list[float]:
    """The ``seconds`` of each call in the locband hook's ``locband_extrec.jsonl`` (empty for another hook)."""
    log = out_dir / "locband_extrec.jsonl"
    if not log.exists():
        return []
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [float(r["seconds"]) for r in records if "seconds" in r]


def _relion_reconstruct_times(run: relion_runner.RefineRun, root: Path, *, n_calls: int) -> list[float]:
    """Time relion_external_reconstruct on the last ``n_calls`` half-set STAR files of a hook run."""
    stars = sorted(run.out_dir.glob("run_it*_half?_class001_external_reconstruct.star"))[-n_calls:]
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for star in stars:  # the STAR names its arrays relative to the project directory
            start = time.perf_counter()
            argv = ["relion_external_reconstruct", str(star.relative_to(root)), "--o", str(Path(tmp) / "map.mrc")]
            subprocess.run(argv, cwd=root, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    return times


def _score(name: str, run: relion_runner.RefineRun, dataset: relion_phantom.Dataset) -> dict[str, object]:
    final_map = run.out_dir / "run_class001.mrc"
    refined = starfile.read(run.out_dir / "run_data.star", always_dict=True)["particles"]
    truth = starfile.read(dataset.truth_star, always_dict=True)["particles"]
    errors = relion_scoring.angular_errors_degrees(refined, truth)
    iteration_s = _iteration_times(run.out_dir)
    row: dict[str, object] = {
        "run": name, "returncode": run.returncode, "wall_s": round(run.seconds, 1),
        "iterations": len(iteration_s), "mean_iteration_s": round(statistics.mean(iteration_s), 2),
        "final_resolution_angstrom": _final_resolution(run),
        "mean_angular_error_deg": round(float(np.mean(errors)), 2),
        "median_angular_error_deg": round(float(np.median(errors)), 2),
    }
    # Small region masks (rigid body, flexible domain) correlate at high frequency by themselves, which
    # holds their FSC above 0.143 up to Nyquist: only their 0.5 crossing is reported.
    for part, mask in (("unmasked", None), ("masked", dataset.mask), ("rigid", dataset.rigid_mask),
                       ("flexible", dataset.flexible_mask)):
        for key, value in relion_scoring.fsc_against_truth(final_map, dataset, mask_path=mask).items():
            if part in ("unmasked", "masked") or key.startswith("fsc0.5"):
                row[f"truth_{key}_{part}"] = round(value, 2)
    return row


def _run(dataset: relion_phantom.Dataset, name: str, hook: str | None, args: argparse.Namespace) -> relion_runner.RefineRun:
    out_dir = dataset.root / "Refine3D" / name
    if args.reuse and (out_dir / "run_data.star").exists():
        print(f"reusing the finished run in {out_dir}", flush=True)
        start = min(p.stat().st_mtime for p in out_dir.glob("run_it000_*"))  # written within seconds of the start
        seconds = (out_dir / "run_data.star").stat().st_mtime - start
        return relion_runner.RefineRun(returncode=0, out_dir=out_dir, seconds=seconds)
    print(f"[{time.strftime('%H:%M:%S')}] auto-refine {name} ({hook or 'RELION internal reconstruction'}) ...",
          flush=True)
    run = relion_runner.run_refine(dataset, name, hook_command=hook, timeout_seconds=args.timeout,
                                 iterations=None, threads=args.threads)
    print(f"[{time.strftime('%H:%M:%S')}] {name}: exit {run.returncode} after {run.seconds:.0f} s", flush=True)
    if run.returncode != 0:
        raise SystemExit(f"{name} failed; see {run.out_dir}/run.out and run.err:\n{run.stderr[-2000:]}")
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small CI data set (400 particles, 40 px)")
    parser.add_argument("--out", type=Path, default=None, help="project directory (default: a new temp dir)")
    parser.add_argument("--hook", default=str(relion_runner.LOCBAND_HOOK),
                        help="external reconstruction program (default: the locband wrapper)")
    parser.add_argument("--threads", type=int, default=1, help="--j per MPI process")
    parser.add_argument("--reuse", action="store_true",
                        help="with --out: keep the data set and any finished run found there; run only what is missing")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per refinement")
    args = parser.parse_args(argv)
    missing = relion_runner.relion_missing()
    if missing:
        print(f"bench_relion_refine: needs {', '.join(missing)} on PATH", file=sys.stderr)
        return 1
    spec = QUICK if args.quick else FULL
    root = args.out or Path(tempfile.mkdtemp(prefix="locband_bench_relion_"))
    print(f"data set: {spec}\nproject: {root}", flush=True)
    if args.reuse and (root / "particles_truth.star").exists():
        relion_phantom.write_truth(root, spec)  # deterministic: refreshes maps and masks, keeps the particles
        dataset = relion_runner.existing_dataset(root, spec)
    else:
        dataset = relion_runner.build_dataset(root, spec)
    baseline = _run(dataset, "relion", None, args)
    hooked = _run(dataset, "locband", args.hook, args)
    rows = [_score("relion", baseline, dataset), _score("locband", hooked, dataset)]
    hook_s = _hook_call_times(hooked.out_dir)
    logged_s = _hook_logged_times(hooked.out_dir)
    own_s = _relion_reconstruct_times(hooked, root, n_calls=4)
    timing = {"hook_calls": len(hook_s), "hook_wall_mean_s_per_call": round(statistics.mean(hook_s.values()), 2),
              "hook_wall_max_s_per_call": round(max(hook_s.values()), 2),
              "hook_logged_mean_s_per_call": round(statistics.mean(logged_s), 2) if logged_s else None,
              "relion_external_reconstruct_mean_s_per_call": round(statistics.mean(own_s), 2)}
    keys = [k for k in rows[0] if k != "run"]
    print(f"\n{'':38s}{'relion':>12s}{'locband':>12s}")
    for key in keys:
        print(f"{key:38s}{rows[0][key]!s:>12s}{rows[1][key]!s:>12s}")
    print(f"\nhook ({args.hook}): {timing['hook_calls']} calls; STAR written -> map in place: mean "
          f"{timing['hook_wall_mean_s_per_call']} s per call (max {timing['hook_wall_max_s_per_call']} s); "
          f"hook's own log: {timing['hook_logged_mean_s_per_call']} s per call")
    print(f"relion_external_reconstruct (RELION's MAP reconstruction) on the same STAR files: "
          f"{timing['relion_external_reconstruct_mean_s_per_call']} s per call")
    print(f"mean wall time per iteration: relion {rows[0]['mean_iteration_s']} s, "
          f"locband {rows[1]['mean_iteration_s']} s")
    result = {"spec": {k: getattr(spec, k) for k in spec.__dataclass_fields__}, "runs": rows, "timing": timing,
              "hook": args.hook, "hook_call_s": hook_s}
    (root / "bench_relion_refine.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"results: {root / 'bench_relion_refine.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
