"""Benchmark: cost of the first and of later calls of the loop API (RefinementFilter).

Prints one line per call (seconds, new FFT plans) for a synthetic refinement: the first call
plans the box; later calls reuse band layout, grids and FFT plans. Numbers only; nothing is
asserted (tests never assert wall-clock times).

    PYTHONPATH=plugin python integration/benchmarks/bench_loop_api.py --size 96 --calls 4 --threads 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from locband.adapters.loop import RefinementFilter
from locband.engine.synthetic import synthetic_pair


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=96, help="cubic box edge (default 96)")
    ap.add_argument("--calls", type=int, default=4, help="iterations (default 4)")
    ap.add_argument("--threads", type=int, default=1, help="FFT threads (default 1)")
    ap.add_argument("--backend", choices=("pyfftw", "scipy"), default=None)
    args = ap.parse_args(argv)
    shape = (args.size,) * 3
    pair = synthetic_pair(shape, noise_std=0.5, seed=0)
    t0 = time.perf_counter()
    rf = RefinementFilter(shape, pixel_size_angstrom=1.0, mask=pair.mask, workers=args.threads, backend=args.backend)
    print(f"box {args.size}^3, threads {args.threads}, backend {rf._filter.backend}: "
          f"constructor {time.perf_counter() - t0:.3f} s")
    for i in range(args.calls):
        rng = np.random.default_rng(i)
        h1 = (pair.truth + rng.normal(0, 0.5, shape)).astype(np.float32)
        h2 = (pair.truth + rng.normal(0, 0.5, shape)).astype(np.float32)
        step = rf(h1, h2)
        print(f"call {step.call_index}: {step.seconds:.3f} s, {step.new_fft_plans} new FFT plans, "
              f"FSC=0.143 at {step.fsc_resolution_angstrom:.2f} Å")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
