"""The optimised interpretation map computes what ``locband denoise`` computed before the cost work.

``tests/helpers/denoise_reference.py`` is a frozen copy of the denoiser as it was (commit
23366be). Both run on the same fixed inputs; they may differ only by float32 rounding, because
the optimised denoiser reorders the same arithmetic (band maps made in reused buffers, weights
and products over slabs of planes on the denoiser's threads, the cross-validation FSCs summed
in one pass over each spectrum).
"""

import numpy as np
import pytest
from denoise_reference import reference_denoise

from locband import DenoiseParams, denoise
from locband.engine import _fft, _slabs
from locband.engine.synthetic import synthetic_pair

CASES = [
    # (shape, mask given, molecular mass in kDa, settings)
    ((40, 40, 40), True, None, {}),
    ((33, 36, 31), False, None, {}),  # odd, non-cubic; the envelope found from each map
    ((40, 44, 36), True, 20.0, {"sharpen": "global", "bfactor_voxels": -20.0}),  # mask and volume
    ((36, 36, 36), False, None, {"cycles": 2, "positivity": False}),
    ((36, 36, 36), True, None, {"significance": False, "sharpen": "off"}),
]

# the engine works over slabs of about 2^18 values: small test boxes fit in one, so the slab
# size is also made tiny (a few planes) to run the code that joins slabs
SLABS = [None, 3000]


@pytest.fixture(params=SLABS, ids=["slabs-default", "slabs-tiny"])
def slab_elements(request, monkeypatch):
    if request.param is not None:
        monkeypatch.setattr(_slabs, "_SLAB_ELEMENTS", request.param)
    return request.param


def _run(fn, case, **kw):
    shape, with_mask, mass, settings = case
    pair = synthetic_pair(shape, kind="rigid_flexible", noise_std=0.7, seed=31)
    return fn(pair.half1, pair.half2, pixel_size_angstrom=1.0, mask=pair.mask if with_mask else None,
              molecular_mass_kda=mass, params=DenoiseParams(**settings), **kw)


def _curves(result):
    out = [result.fsc_unmasked, *result.cross_unmasked, *result.cross_linear_unmasked]
    if result.fsc_masked is not None:
        out += [result.fsc_masked, *result.cross_masked, *result.cross_linear_masked]
    return out


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("backend", _fft.available_backends())
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_same_result_as_before_the_cost_work(case, backend, workers, slab_elements):
    ref = _run(reference_denoise, case, backend=backend, workers=workers)
    new = _run(denoise, case, backend=backend, workers=workers)
    scale = float(np.abs(ref.full).max())
    # float32 rounding only: each transform rounds at ~1e-7 of the map's range and the outputs pass
    # through a few dozen of them; the noise-power guard's sums (float32 dot products before,
    # float64 sums over slabs now) differ by ~1e-6 relative, which moves a guarded band by as much.
    # Measured at most TBD of the range on these cases; 1e-5 is far below any change of method
    # (1e-3 and more)
    for got, want in ((new.full, ref.full), (new.half1, ref.half1), (new.half2, ref.half2)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)
    np.testing.assert_array_equal(new.local_frequency, ref.local_frequency)
    np.testing.assert_array_equal(new.local_resolution_angstrom, ref.local_resolution_angstrom)
    assert new.envelope_volume_voxels == ref.envelope_volume_voxels
    # FSCs: float64 sums of float32 products, summed in another order; the maps differ by rounding
    for got, want in zip(_curves(new), _curves(ref), strict=True):
        np.testing.assert_allclose(got.fsc, want.fsc, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(got.counts, want.counts)


def test_results_do_not_depend_on_the_thread_count(slab_elements):
    one, three = (_run(denoise, CASES[0], workers=w) for w in (1, 3))
    # slabs are the same whatever the threads, and per-slab sums are added in slab order
    for a, b in ((one.full, three.full), (one.half1, three.half1), (one.half2, three.half2)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_curves(one), _curves(three), strict=True):
        np.testing.assert_array_equal(a.fsc, b.fsc)
