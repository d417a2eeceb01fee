"""Golden values of ``local_filter`` on one small fixed input: a regression test of the whole engine.

The numbers were computed once (scipy backend, 1 thread) from a fixed synthetic pair; any change
of the method changes them by far more than the tolerances below, while float32 rounding of
another FFT backend, thread count or order of operations does not reach them.
"""

from __future__ import annotations

import numpy as np
import pytest

from locband import local_filter
from locband.engine import _fft
from locband.engine.synthetic import synthetic_pair

# aggregates over the ~10^4 voxels: pyFFTW and scipy differ by 1e-7 relative here (float32 rounding
# summed over the box); 1e-5 leaves room for a reordered computation and is still 1000 times below
# what a change of the method moves (a band, a window or a weight changes these by 1e-2 and more)
RTOL = 1e-5
# single voxels and FSC values near 0: the backends differ by 4e-9 absolute
ATOL = 1e-6

GOLDEN = {
    "n_bands": 5,
    "full_sum": 432.56859,
    "full_abs_sum": 528.59711,
    "half1_sq_sum": 75.836463,
    "half2_sq_sum": 65.324907,
    "local_resolution_median": 14.5147,
    "local_resolution_min": 5.9124947,
    "local_resolution_max": 36.0,
    "local_resolution_mean": 17.801323,
}
GOLDEN_VOXELS = {(10, 11, 12): 0.17716006, (5, 16, 7): 0.011429010, (14, 3, 20): 0.016856362}
GOLDEN_FSC = {2: 0.27665900, 5: 0.066879332, 8: -0.0012020967, 11: 0.046747902}
GOLDEN_FSC_MASKED = {2: 0.82550287, 5: 0.35243466, 8: 0.0059599931, 11: -0.0020537713}


@pytest.fixture(scope="module", params=_fft.available_backends())
def result(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    pair = synthetic_pair((20, 22, 24), kind="rigid_flexible", noise_std=0.8, seed=7)  # non-cubic
    return local_filter(pair.half1, pair.half2, pixel_size_angstrom=1.5, mask=pair.mask, backend=request.param)


def _f64(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64)


def test_aggregates(result) -> None:  # type: ignore[no-untyped-def]
    got = {
        "n_bands": result.bands.n_bands,
        "full_sum": float(_f64(result.full).sum()),
        "full_abs_sum": float(np.abs(_f64(result.full)).sum()),
        "half1_sq_sum": float((_f64(result.half1) ** 2).sum()),
        "half2_sq_sum": float((_f64(result.half2) ** 2).sum()),
        "local_resolution_median": float(np.median(result.local_resolution_angstrom)),
        "local_resolution_min": float(result.local_resolution_angstrom.min()),
        "local_resolution_max": float(result.local_resolution_angstrom.max()),
        "local_resolution_mean": float(_f64(result.local_resolution_angstrom).mean()),
    }
    assert got == pytest.approx(GOLDEN, rel=RTOL)


def test_voxels(result) -> None:  # type: ignore[no-untyped-def]
    got = {idx: float(result.full[idx]) for idx in GOLDEN_VOXELS}
    assert got == pytest.approx(GOLDEN_VOXELS, abs=ATOL)


def test_global_fsc(result) -> None:  # type: ignore[no-untyped-def]
    assert {i: float(result.fsc_unmasked.fsc[i]) for i in GOLDEN_FSC} == pytest.approx(GOLDEN_FSC, abs=ATOL)
    assert {i: float(result.fsc_masked.fsc[i]) for i in GOLDEN_FSC_MASKED} == pytest.approx(GOLDEN_FSC_MASKED,
                                                                                            abs=ATOL)
