"""The filter on a real CUDA GPU (CuPy) against the CPU. Marked ``gpu``: deselected by default.

Run on a machine with an NVIDIA GPU and CuPy (``pip install 'locband[gpu]'``)::

    python -m pytest -m gpu tests/engine/test_gpu.py
"""

from __future__ import annotations

import numpy as np
import pytest

from locband import FilterParams, LocalFilter
from locband.engine import _fft
from locband.engine.synthetic import synthetic_pair

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def cupy():  # imported by the tests, not at collection: deselected tests must leave no trace
    return pytest.importorskip("cupy")


@pytest.mark.parametrize(("shape", "params"), [((64, 64, 64), FilterParams()),
                                               ((47, 52, 45), FilterParams(apply_mask=True, keep_band_snr=True))])
def test_gpu_result_equals_cpu_result(shape: tuple[int, int, int], params: FilterParams, cupy) -> None:
    pair = synthetic_pair(shape, kind="rigid_flexible", noise_std=0.7, seed=21)
    cpu = LocalFilter(shape, pixel_size_angstrom=1.0, mask=pair.mask, params=params)(pair.half1, pair.half2)
    gpu = LocalFilter(shape, pixel_size_angstrom=1.0, mask=pair.mask, params=params, device="cuda")(
        pair.half1, pair.half2)
    scale = float(np.abs(cpu.full).max())
    # float32 throughout on both; cuFFT and pocketfft round differently (~1e-7 per transform, as
    # pyfftw and scipy do: 2.6e-7 of the range) and the GPU sums the statistics' means in another
    # order (~1e-7 relative, fed through the shrinkage and the weights): 1e-5 of the range leaves
    # a factor of 10 over what that can add up to and is 100 times below a change of method
    for name in ("full", "half1", "half2"):
        np.testing.assert_allclose(getattr(gpu, name), getattr(cpu, name), rtol=0, atol=1e-5 * scale, err_msg=name)
    np.testing.assert_allclose(gpu.local_frequency, cpu.local_frequency, rtol=0, atol=1e-3)  # 1/30 of a band spacing


def test_plans_and_device_memory_are_reused_from_call_to_call(cupy) -> None:
    shape = (72, 72, 72)
    pair = synthetic_pair(shape, noise_std=0.7, seed=22)
    lf = LocalFilter(shape, pixel_size_angstrom=1.0, mask=pair.mask, device="cuda")
    pool = cupy.get_default_memory_pool()
    lf(pair.half1, pair.half2)
    plans, reserved = _fft.plans_created(), pool.total_bytes()
    for _ in range(3):
        lf(pair.half1, pair.half2)
    assert _fft.plans_created() == plans  # cuFFT plans come from CuPy's plan cache
    assert pool.total_bytes() <= reserved  # CuPy's pool serves every later call from the first call's blocks
