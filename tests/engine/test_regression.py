"""The optimised engine computes what the engine computed before the speed work.

``tests/helpers/locband_reference.py`` is a frozen copy of the algorithm as it was (commit
40b273a, FFTs by ``scipy.fft``). Both run on the same fixed inputs; they may differ only by
float32 rounding, because the optimised engine reorders the same arithmetic (transforms
split into passes over slabs, products fused, the statistics transformed only where the
window passes).
"""

import numpy as np
import pytest
from locband_reference import reference_filter

from locband import FilterParams, LocalFilter
from locband.engine import _fft, _slabs, local
from locband.engine._grid import crop_indices
from locband.engine.synthetic import synthetic_pair

CASES = [
    ((48, 48, 48), True, FilterParams()),
    ((31, 37, 29), False, FilterParams()),  # odd, prime and non-cubic
    ((40, 48, 56), True, FilterParams(apply_mask=True)),
]


# the engine works over slabs of about 2^18 values: small test boxes fit in one, so the slab
# size is also made tiny (a few planes) to run the code that joins slabs
SLABS = [None, 3000]


@pytest.fixture(params=SLABS, ids=["slabs-default", "slabs-tiny"])
def slab_elements(request, monkeypatch):
    if request.param is not None:
        monkeypatch.setattr(_slabs, "_SLAB_ELEMENTS", request.param)
    return request.param


@pytest.fixture(params=[False, True], ids=["schedule-default", "schedule-lean"])
def lean(request, monkeypatch):
    """The lean schedule (large boxes: full-size band maps made again one half at a time) on small boxes."""
    if request.param:
        monkeypatch.setattr(local, "_LEAN_MIN_VOXELS", 0)
    return request.param


def _reference(h1, h2, *, mask, params):
    """The frozen reference on mean-free halves, with the means put back as the engine puts them.

    Since issue 8 the engine removes each half's mean (and divides both by one power of two,
    which changes no rounding) and restores the means before the mask is applied
    (``PairScale``); the reference predates that, so it is given mean-free halves here.
    """
    m1, m2 = float(h1.mean(dtype=np.float64)), float(h2.mean(dtype=np.float64))
    out = reference_filter(h1 - np.float32(m1), h2 - np.float32(m2), mask=mask, params=params)
    w = mask if (params.apply_mask and mask is not None) else np.float32(1)
    return (out[0] + np.float32(m1) * w, out[1] + np.float32(m2) * w, out[2] + np.float32(0.5 * (m1 + m2)) * w,
            out[3])


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("backend", _fft.available_backends())
@pytest.mark.parametrize(("shape", "with_mask", "params"), CASES)
def test_same_result_as_before_the_speed_work(shape, with_mask, params, backend, workers, slab_elements, lean):
    pair = synthetic_pair(shape, kind="rigid_flexible", noise_std=0.7, seed=11)
    mask = pair.mask if with_mask else None
    ref = _reference(pair.half1, pair.half2, mask=mask, params=params)
    new = LocalFilter(shape, pixel_size_angstrom=1.0, mask=mask, params=params, backend=backend,
                      workers=workers)(pair.half1, pair.half2)
    scale = float(np.abs(ref[2]).max())
    # float32 rounding only: each transform rounds at ~1e-7 of the map's range and the outputs
    # pass through a few of them; measured at most 3.3e-7 of the range on these cases (both
    # backends, 1 and 2 threads; the old engine's pyfftw and scipy backends differed by 2.6e-7),
    # so 2e-6 is six times that and far below any change of method (1e-3 and more)
    for got, want in zip((new.half1, new.half2, new.full), ref[:3], strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * scale)
    # the local frequency interpolates between band centres where the local FSC crosses the
    # criterion, which magnifies rounding of the statistics: measured at most 2e-5 cycles/voxel,
    # against band spacings of 0.03 and more
    np.testing.assert_allclose(new.local_frequency, ref[3], rtol=0, atol=1e-4)


def test_results_do_not_depend_on_the_thread_count(slab_elements, lean):
    pair = synthetic_pair((40, 36, 44), kind="rigid_flexible", noise_std=0.7, seed=12)
    one, three = (LocalFilter(pair.truth.shape, pixel_size_angstrom=1.0, mask=pair.mask, workers=w)(
        pair.half1, pair.half2) for w in (1, 3))
    # slabs are the same whatever the threads: the same arithmetic in the same order
    for a, b in ((one.full, three.full), (one.half1, three.half1), (one.local_frequency, three.local_frequency)):
        np.testing.assert_array_equal(a, b)


def test_outputs_add_sums_bands_in_any_order_of_grids():
    """_Outputs.add (the seam other engines use) sums weighted bands given as real maps."""
    from locband.engine._outputs import _Outputs

    rng = np.random.default_rng(3)
    shape, grids = (24, 20, 18), [(8, 8, 6), (12, 10, 9), (24, 20, 18)]
    maps = {g: [rng.standard_normal(g).astype(np.float32) for _ in range(3)] for g in grids}
    want = []
    for i in range(3):  # every band Fourier-padded to the box and summed
        total = np.zeros(shape, np.float32)
        for g in grids:
            spec = np.zeros(shape[:-1] + (shape[-1] // 2 + 1,), np.complex64)
            spec[np.ix_(*crop_indices(shape, g))] = _fft.rfftn(maps[g][i])
            total += _fft.irfftn(spec, shape)
        want.append(total)
    for order in ([0, 1, 2], [1, 0, 2]):
        out = _Outputs(shape, tuple(grids), workers=1, backend="scipy")
        for b in order:
            out.add(b, *maps[grids[b]])
        for got, w in zip(out.finish(), want, strict=True):
            np.testing.assert_allclose(got, w, atol=1e-5)  # float32 transforms of unit-variance maps
