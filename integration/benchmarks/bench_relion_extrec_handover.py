"""Hand-over latency and cost of one RELION hook call pair (prints numbers, asserts nothing).

Starts the two half-set calls the way relion_refine does (``sh -c "<wrapper> <star>"``), half 2
``--delay`` seconds after half 1, so that half 1 really waits. The hand-over latency is the time
from half 2's record being written to half 1 having read it (half 1's result time minus its
filter time). Also prints the wall time of each call and the filter time per box size.

Run from the repository root:
    PYTHONPATH=plugin python integration/benchmarks/bench_relion_extrec_handover.py --box 40 64 --delay 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "plugin"), str(REPO / "tests" / "helpers")]  # the test helpers write RELION's files

from relion_hook_files import write_external_reconstruct_inputs  # noqa: E402
from relion_sums import simulate_half_sums  # noqa: E402

WRAPPER = REPO / "wrappers" / "locband-relion-reconstruct"


def _field(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    f = np.fft.fftfreq(n)
    s = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2)
    out = np.fft.ifftn(np.exp(-(s / 0.25) ** 2) * (rng.normal(size=(n,) * 3) + 1j * rng.normal(size=(n,) * 3))).real
    return out / out.std()


def one(n: int, delay: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "Refine3D" / "job001"
        job.mkdir(parents=True)
        d1, d2, w, tau2, fsc = simulate_half_sums(_field(n), noise_power=1000.0)
        stars = {h: write_external_reconstruct_inputs(job / f"run_it002_half{h}_class001", d, w, tau2=tau2, fsc=fsc,
                                                      ori_size=n, current_size=n)
                 for h, d in ((1, d1), (2, d2))}
        env = dict(os.environ, LOCBAND_PYTHON=sys.executable)
        t0 = time.time()
        p1 = subprocess.Popen(["sh", "-c", f"{WRAPPER} {stars[1]}"], cwd=tmp, env=env, stdout=subprocess.PIPE)
        time.sleep(delay)
        p2 = subprocess.Popen(["sh", "-c", f"{WRAPPER} {stars[2]}"], cwd=tmp, env=env, stdout=subprocess.PIPE)
        p1.wait()
        t1 = time.time()
        p2.wait()
        t2 = time.time()
        assert p1.returncode == 0 and p2.returncode == 0
        rec2 = json.loads((job / "locband_extrec" / "run_it002_class001" / "half2.json").read_text())
        log = {r["half"]: r for r in map(json.loads, (job / "locband_extrec.jsonl").read_text().splitlines())}
        filter_s = log[1]["timings"]["total"]
        result1 = (job / "run_it002_half1_class001_external_reconstruct.mrc").stat().st_mtime
        return {"box": n, "handover_s": result1 - filter_s - rec2["written_unix"], "filter_s": filter_s,
                "half1_wall_s": t1 - t0, "half2_wall_s": t2 - t0 - delay}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--box", type=int, nargs="+", default=[40, 64])
    ap.add_argument("--delay", type=float, default=2.0)
    args = ap.parse_args()
    print(f"{'box':>5} {'hand-over s':>12} {'filter s':>9} {'half1 wall s':>13} {'half2 wall s':>13}")
    for n in args.box:
        r = one(n, args.delay)
        print(f"{r['box']:>5} {r['handover_s']:>12.3f} {r['filter_s']:>9.2f} {r['half1_wall_s']:>13.2f} "
              f"{r['half2_wall_s']:>13.2f}")


if __name__ == "__main__":
    main()
