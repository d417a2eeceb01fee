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


# threads change the slabs' schedule, not their arithmetic; the pyFFTW backend (3-D plans) is run on
# one thread only: planning FFTW for the dozens of band grids on three threads takes a minute
RUNS = [("scipy", 1), ("scipy", 3)] + [(b, 1) for b in _fft.available_backends() if b != "scipy"]


@pytest.mark.parametrize(("backend", "workers"), RUNS, ids=[f"{b}-{w}" for b, w in RUNS])
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_same_result_as_before_the_cost_work(case, backend, workers, slab_elements):
    ref = _run(reference_denoise, case, backend=backend, workers=workers)
    new = _run(denoise, case, backend=backend, workers=workers)
    scale = float(np.abs(ref.full).max())
    # float32 rounding only: each transform rounds at ~1e-7 of the map's range and the outputs pass
    # through a few dozen of them; the noise-power guard's sums (float32 dot products before,
    # float64 sums of per-slab dot products now) differ in their last digits, which scales a guarded
    # band by as little. Measured at most 1.4e-7 of the range on these cases (6.8e-7 at 256^3);
    # 1e-5 is far below any change of method (1e-3 and more)
    for got, want in ((new.full, ref.full), (new.half1, ref.half1), (new.half2, ref.half2)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)
    np.testing.assert_array_equal(new.local_frequency, ref.local_frequency)
    np.testing.assert_array_equal(new.local_resolution_angstrom, ref.local_resolution_angstrom)
    assert new.envelope_volume_voxels == ref.envelope_volume_voxels
    # FSCs: float64 sums of float32 products, summed in another order, of maps that differ by
    # rounding: measured at most 6e-7 here (1.2e-6 at 256^3)
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


def _blobby(rng, shape):
    """Smoothed noise: blobs of every size above a threshold, some touching the box's faces."""
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.5, mode="wrap")
    return np.maximum(field, 0).astype(np.float32)


@pytest.mark.parametrize("shape", [(40, 40, 40), (33, 29, 37)])
@pytest.mark.parametrize("min_voxels", [1.0, 30.0, 1e9])
def test_blob_removal_is_the_same_as_before(shape, min_voxels, rng):
    from denoise_reference import remove_isolated_blobs as reference

    from locband.engine.priors import remove_isolated_blobs

    density = _blobby(rng, shape)
    threshold = float(np.percentile(density, 90))
    density[:, :, :4] = 0  # nothing above the threshold near one face: the labelled box is smaller than the box
    want = reference(density, threshold=threshold, min_voxels=min_voxels, distance_voxels=3.0)
    got = remove_isolated_blobs(density, threshold=threshold, min_voxels=min_voxels, distance_voxels=3.0)
    # labels, sizes and distances: integer and boolean work, the same voxels removed
    np.testing.assert_array_equal(got, want)
    if min_voxels == 30.0:  # the case must remove something, or it proves nothing
        assert np.count_nonzero(got != density) > 0


@pytest.mark.parametrize("positivity", [True, False])
@pytest.mark.parametrize("with_envelope", [True, False])
def test_prior_density_is_the_same_as_before(positivity, with_envelope, rng):
    from denoise_reference import prior_density as reference

    from locband.engine.priors import prior_density

    pair = synthetic_pair((36, 40, 32), kind="rigid_flexible", noise_std=0.7, seed=33)
    vol = pair.half1
    env = pair.mask if with_envelope else None
    kw = dict(envelope=env, positivity=positivity, blob_threshold=0.3, blob_min_voxels=40.0,
              blob_distance_voxels=3.0)
    want, want_level = reference(vol, **kw)
    out = np.full(vol.shape, np.nan, np.float32)
    got, level = prior_density(vol, out=out, **kw)
    assert got is out
    # the solvent level is a float64 mean summed over slabs now: rounding of float64 only
    assert level == pytest.approx(want_level, rel=1e-12, abs=1e-12)
    # the same float32 operations per voxel (the level rounds to the same float32)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(32, 32, 32), (33, 36, 31), (24, 30, 40)])
def test_shell_sums_give_the_fsc_of_fsc_from_spectra(shape, rng, monkeypatch):
    from locband.engine._shells import ShellSums, fsc_curve
    from locband.engine.fsc import fsc_from_spectra

    monkeypatch.setattr(_slabs, "_SLAB_ELEMENTS", 3000)  # several slabs, also on these small boxes
    a = rng.standard_normal(shape).astype(np.float32)
    b = a + 2 * rng.standard_normal(shape).astype(np.float32)
    f1, f2 = _fft.rfftn(a), _fft.rfftn(b)
    want = fsc_from_spectra(f1, f2, shape)
    shells = ShellSums(shape, workers=3)
    for keep in (False, True, True):  # the shell index made, then kept and reused
        if keep:
            shells.keep()

        def produce(z0, z1, s2):
            x, y = f1[z0:z1], f2[z0:z1]
            return [(x * np.conj(y)).real, x.real ** 2 + x.imag ** 2, y.real ** 2 + y.imag ** 2]

        s = shells.sums(produce, 3)
        got = fsc_curve(s[0], s[1], s[2], shape)
        # float64 sums of the same float32 products, in another order
        np.testing.assert_allclose(got.fsc, want.fsc, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(got.counts, want.counts)
        np.testing.assert_array_equal(got.frequency, want.frequency)
    shells.release()
