"""Synthetic half-maps for the benchmarks, at any box size in reasonable time and memory.

Up to 256^3 this is :func:`locband.engine.synthetic.synthetic_pair` (rigid + flexible particle,
noise 1, seed 1). Larger boxes take that particle's truth at 256^3, Fourier-upsample it to the
box (the same particle, finer voxels) and add fresh unit noise: ``synthetic_pair`` itself would
need about 8 GiB and a minute at 512^3 for the same kind of map.
"""

from __future__ import annotations

import numpy as np

from locband.engine import _fft
from locband.engine._grid import crop_blocks
from locband.engine._interp import resample_linear
from locband.engine.synthetic import synthetic_pair


def bench_pair(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(half1, half2, mask)`` of an ``n^3`` box, float32."""
    m = min(n, 256)
    pair = synthetic_pair((m,) * 3, kind="rigid_flexible", noise_std=1.0, seed=1)
    if m == n:
        return pair.half1, pair.half2, pair.mask
    spec = _fft.rfftn(pair.truth)
    big = np.zeros((n, n, n // 2 + 1), np.complex64)
    for in_big, in_small in crop_blocks((n, n, n), (m, m, m)):
        big[in_big] = spec[in_small]
    del spec
    truth = _fft.irfftn(big, (n, n, n), overwrite_input=True)
    del big
    rng = np.random.default_rng(2)
    half1 = truth + rng.standard_normal(truth.shape, dtype=np.float32)
    truth += rng.standard_normal(truth.shape, dtype=np.float32)
    mask = np.clip(resample_linear(pair.mask, (n, n, n)), 0, 1).astype(np.float32)
    return half1, truth, mask
