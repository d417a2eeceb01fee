"""GPU benchmark: the filter on one CUDA GPU (CuPy) against the CPU, 256^3 and 512^3.

Needs an NVIDIA GPU and CuPy already installed (``pip install 'locband[gpu]'``, i.e.
cupy-cuda12x); installs nothing. Run from the repository root (a few minutes):

    python integration/benchmarks/bench_gpu.py              # 256^3 and 512^3, 4 calls each
    python integration/benchmarks/bench_gpu.py --sizes 256 --calls 3

Prints per box, measured in this one run:
* wall time of each call of one ``LocalFilter(device="cuda")`` with ``Device().synchronize()``
  before and after (call 1 makes the cuFFT plans and fills CuPy's memory pool; later calls
  reuse both; call 1 also records the peak of memory in use, through an allocator hook that
  slows it), with the engine's own stage timings, next to the CPU engine on all cores;
  targets on one H200: 256^3 < 0.3 s, 512^3 < 2 s (later calls);
* the largest difference between the GPU and CPU results (full map and halves, relative to the
  CPU full map's range; local frequency in cycles/voxel): float32 rounding only, expected
  below 1e-5 (``tests/engine/test_gpu.py`` asserts that bound at 64^3);
* GPU memory: the peak of bytes in use (an allocator hook on CuPy's pool) and the pool's
  high-water mark (``total_bytes``), after the first call and after the last;
* reuse: new FFT plans per call (``locband.engine._fft.plans_created``) and the number of plans
  in CuPy's cuFFT plan cache after each call (constant after call 1 when plans are reused).

``--fake-device`` runs the script's logic on the CPU with the test suite's fake CuPy (small
boxes only; no timing meaning): a check of this script where no GPU is at hand.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugin"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_data import bench_pair  # noqa: E402

from locband import LocalFilter  # noqa: E402
from locband.engine import _device, _fft  # noqa: E402

TARGETS = {256: 0.3, 512: 2.0}  # seconds per later call on one H200


class Gpu:
    """What the benchmark reads from CuPy: synchronisation, memory pool, plan cache."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.pool = cp.get_default_memory_pool()
        self.peak = 0

    def track_peak(self, on: bool) -> None:
        """Route CuPy's allocations through a hook that records the pool's bytes in use (slower)."""
        def alloc(nbytes: int) -> Any:
            mem = self.pool.malloc(nbytes)
            self.peak = max(self.peak, self.pool.used_bytes())
            return mem

        self.peak = 0
        self.cp.cuda.set_allocator(alloc if on else self.pool.malloc)

    def sync(self) -> None:
        self.cp.cuda.Device().synchronize()

    def plans_cached(self) -> int:
        return int(self.cp.fft.config.get_plan_cache().get_curr_size())

    def name(self) -> str:
        props = self.cp.cuda.runtime.getDeviceProperties(self.cp.cuda.Device().id)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)


def _fake_cupy() -> Any:
    """The tests' fake CuPy with the few extras this script reads (no timing meaning)."""
    sys.path.insert(0, str(ROOT / "tests" / "helpers"))
    import fake_cupy

    ns = fake_cupy.namespace
    pool = types.SimpleNamespace(malloc=lambda n: None, used_bytes=lambda: 0, total_bytes=lambda: 0)
    ns.get_default_memory_pool = lambda: pool
    ns.cuda.set_allocator = lambda fn: None
    ns.cuda.Device = lambda: types.SimpleNamespace(synchronize=lambda: None, id=0)
    ns.cuda.runtime.getDeviceProperties = lambda i: {"name": b"fake device (CPU)"}
    ns.fft.config = types.SimpleNamespace(get_plan_cache=lambda: types.SimpleNamespace(get_curr_size=lambda: 0))
    _device._import_cupy = lambda: ns
    return ns


def run_size(n: int, calls: int, gpu: Gpu, cpu_threads: int) -> dict[str, Any]:
    h1, h2, mask = bench_pair(n)
    t0 = time.perf_counter()
    cpu = LocalFilter(h1.shape, pixel_size_angstrom=1.0, mask=mask, workers=cpu_threads)(h1, h2)
    cpu_wall = time.perf_counter() - t0
    lf = LocalFilter(h1.shape, pixel_size_angstrom=1.0, mask=mask, device="cuda")
    walls, plans, cached, stages = [], [], [], []
    res = None
    for i in range(calls + 1):  # the last call, untimed, measures the peak of device memory in use
        gpu.track_peak(i in (0, calls))
        before = _fft.plans_created()
        gpu.sync()
        t0 = time.perf_counter()
        res = lf(h1, h2)
        gpu.sync()
        if i == calls:
            break
        walls.append(time.perf_counter() - t0)
        plans.append(_fft.plans_created() - before)
        cached.append(gpu.plans_cached())
        stages.append(res.timings)
        if i == 0:
            first_peak, first_total = gpu.peak, gpu.pool.total_bytes()
    gpu.track_peak(False)
    assert res is not None
    scale = float(cpu.full.max() - cpu.full.min())
    diff = max(float(np.abs(getattr(res, k) - getattr(cpu, k)).max()) for k in ("full", "half1", "half2")) / scale
    return {"n": n, "cpu_wall": cpu_wall, "walls": walls, "plans": plans, "cached": cached, "stages": stages,
            "diff": diff, "dfreq": float(np.abs(res.local_frequency - cpu.local_frequency).max()),
            "peak_first": first_peak, "total_first": first_total, "peak": gpu.peak,
            "total": gpu.pool.total_bytes()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--calls", type=int, default=4, help="calls per box (the first one plans)")
    ap.add_argument("--fake-device", action="store_true", help="check this script on the CPU (small boxes)")
    args = ap.parse_args()
    cp = _fake_cupy() if args.fake_device else _device.namespace("cuda")  # one line naming the install if missing
    gpu = Gpu(cp)
    cpu_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    print(f"locband GPU benchmark: {gpu.name()}, CuPy {getattr(cp, '__version__', '?')}; CPU reference on "
          f"{cpu_threads} threads")
    for n in args.sizes:
        r = run_size(n, args.calls, gpu, cpu_threads)
        later = r["walls"][1:] or r["walls"]
        med = statistics.median(later)
        target = TARGETS.get(n)
        verdict = "" if target is None else (f"target < {target} s: " + ("MET" if med < target else "NOT MET"))
        print(f"\n{n}^3: GPU wall per call (synchronised) " + ", ".join(f"{w:.3f}" for w in r["walls"])
              + f" s; later calls median {med:.3f} s  {verdict}")
        print(f"  CPU engine, {cpu_threads} threads: {r['cpu_wall']:.2f} s ({r['cpu_wall'] / med:.0f}x the GPU)")
        st = r["stages"][-1]
        print("  last call's stages (s): " + ", ".join(f"{k} {v:.3f}" for k, v in st.items()))
        print(f"  largest difference to the CPU: maps {r['diff']:.2e} of the range, local frequency "
              f"{r['dfreq']:.2e} cycles/voxel (float32 rounding expected: maps < 1e-5)")
        gib = 1024 ** 3
        print(f"  GPU memory: peak in use {r['peak_first'] / gib:.2f} GiB in call 1, {r['peak'] / gib:.2f} GiB "
              f"in an extra call after call {len(r['walls'])}; pool high-water {r['total_first'] / gib:.2f} -> "
              f"{r['total'] / gib:.2f} GiB (equal: later calls reuse the pool's blocks)")
        print(f"  new FFT plans per call {r['plans']}; cuFFT plans in CuPy's cache after each call {r['cached']} "
              "(constant after call 1: plans reused)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
