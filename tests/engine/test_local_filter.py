"""Properties of the local filter on synthetic data with known answers (issue: engine a-f)."""

import numpy as np
import pytest

from locband import FilterParams, LocalFilter, global_wiener_filter, local_filter
from locband.engine import _fft
from locband.engine.bands import band_weight
from locband.engine.metrics import real_space_correlation as cc
from locband.engine.synthetic import synthetic_pair

ODD_SHAPES = [(31, 37, 29), (47, 47, 47), (40, 48, 56), (33, 32, 31)]


@pytest.mark.parametrize("shape", [(64, 64, 64)] + ODD_SHAPES)
def test_a_high_snr_halves_come_back_unchanged(shape):
    # identical halves are refused (they are not independent: tests/engine/test_fsc_checks.py);
    # the nearest valid case is noise 1e-4 of an atom's peak, per-half SNR ~1e4 at Nyquist
    noise = 1e-4
    pair = synthetic_pair(shape, kind="uniform", noise_std=noise, seed=3)
    r = local_filter(pair.half1, pair.half2, pixel_size_angstrom=1.2)
    # weights are 1 - N/(S+N) ~ 1 and the bands sum to 1: the filter removes at most the noise,
    # so every output stays within a few noise sd of its input (max over 1e5 voxels < 5 sd;
    # measured 2.6 sd)
    tol = 6 * noise
    np.testing.assert_allclose(r.half1, pair.half1, atol=tol)
    np.testing.assert_allclose(r.half2, pair.half2, atol=tol)
    np.testing.assert_allclose(r.full, (pair.half1 + pair.half2) / 2, atol=tol)


@pytest.mark.parametrize("shape", [(64, 64, 64), (47, 47, 47)])
def test_b_pure_noise_is_suppressed(shape, rng):
    h1 = rng.standard_normal(shape).astype(np.float32)
    h2 = rng.standard_normal(shape).astype(np.float32)
    r = local_filter(h1, h2, pixel_size_angstrom=1.0)
    # "a few per cent" at most; measured ~0.05 %, so 2 % leaves room for other seeds and boxes
    assert (r.full ** 2).mean() < 0.02 * (((h1 + h2) / 2) ** 2).mean()
    assert (r.half1 ** 2).mean() < 0.02 * (h1 ** 2).mean()
    assert (r.half2 ** 2).mean() < 0.02 * (h2 ** 2).mean()


@pytest.mark.parametrize("shape,noise", [((64, 64, 64), 1.0), ((64, 64, 64), 3.0), ((50, 50, 50), 2.0)])
def test_c_uniform_snr_matches_the_global_wiener_filter(shape, noise, stationary):
    truth, h1, h2 = stationary(shape, noise)
    r = local_filter(h1, h2, pixel_size_angstrom=1.0)
    g_full, g1, g2 = global_wiener_filter(h1, h2)
    # the bound: real-space correlation within 0.01 (measured 0.997-0.9995)
    assert cc(r.full, g_full) > 0.99
    assert cc(r.half1, g1) > 0.99
    assert cc(r.half2, g2) > 0.99


def _true_crossing(pair, region, layout, criterion):
    """Frequency where the true band SNR of a region crosses the criterion (band centres)."""
    t = _fft.rfftn(pair.truth, backend="scipy")
    shape = pair.truth.shape
    s = np.sqrt(sum(np.meshgrid(*[np.fft.fftfreq(n) ** 2 for n in shape[:-1]],
                               np.fft.rfftfreq(shape[-1]) ** 2, indexing="ij")))
    centres = np.asarray(layout.centres)
    fsc = []
    for b in range(len(centres)):
        w = band_weight(s, centres, b)
        tb = _fft.irfftn(t * w, shape, backend="scipy")
        signal = float((tb[region] ** 2).mean())
        # white noise of variance sigma^2 through the band: sigma^2 * mean(w^2) over the spectrum
        full_w2 = np.concatenate([w, w[..., 1:(shape[-1] + 1) // 2]], axis=-1)
        noise = pair.noise_std ** 2 * float((full_w2 ** 2).mean())
        fsc.append(signal / (signal + noise))
    fsc = np.array(fsc)
    b = int(np.nonzero(fsc < criterion)[0][0])
    t_ = (fsc[b - 1] - criterion) / (fsc[b - 1] - fsc[b])
    return centres[b - 1] + t_ * (centres[b] - centres[b - 1]), centres


@pytest.mark.parametrize("seed", [1, 2])
def test_d_rigid_and_flexible_regions_are_told_apart(seed):
    n, rigid_fraction = 64, 0.35
    pair = synthetic_pair((n,) * 3, kind="rigid_flexible", noise_std=0.5, flexible_sigma=2.5,
                          rigid_fraction=rigid_fraction, seed=seed)
    r = local_filter(pair.half1, pair.half2, pixel_size_angstrom=1.0, mask=pair.mask)
    g, _, _ = global_wiener_filter(pair.half1, pair.half2, mask=pair.mask)
    # judge each region away from the interface: the windows (sigma up to 6.4 voxels in a 64
    # box) mix the two sides within about that distance, so keep 8 voxels (0.25 of the half-box)
    x = (np.arange(n) - n / 2) / (n / 2)
    cut = 0.6 * (2 * rigid_fraction - 1)
    far = np.abs(x - cut)[None, None, :] > 0.25
    cores = {k: v & far for k, v in pair.regions.items()}
    measured = {k: float(np.median(r.local_frequency[v])) for k, v in cores.items()}
    for name, core in cores.items():
        expected, centres = _true_crossing(pair, core, r.bands, r.params.criterion)
        k = int(np.searchsorted(centres, expected))
        band_width = centres[min(k, len(centres) - 1)] - centres[k - 1]
        assert abs(measured[name] - expected) <= band_width, (name, measured[name], expected)
    assert measured["rigid"] > measured["flexible"] + 0.05
    for name, core in cores.items():
        # locband must beat the global FSC filter in both regions (measured +0.006/+0.13)
        assert cc(r.full, pair.truth, weights=core) > cc(g, pair.truth, weights=core), name


def test_e_scaling_and_shifting(rng):
    pair = synthetic_pair((48, 48, 48), kind="rigid_flexible", noise_std=0.7, seed=4)
    base = local_filter(pair.half1, pair.half2, pixel_size_angstrom=1.0)
    c = 37.5
    scaled = local_filter(pair.half1 * c, pair.half2 * c, pixel_size_angstrom=1.0)
    scale = np.abs(base.full).max() * c
    # the weights are ratios of powers: scale-free up to float32 rounding
    np.testing.assert_allclose(scaled.full, base.full * c, atol=1e-4 * scale)
    np.testing.assert_allclose(scaled.half1, base.half1 * c, atol=1e-4 * scale)
    np.testing.assert_allclose(scaled.local_frequency, base.local_frequency, atol=1e-4)
    shift = (5, -3, 11)
    rolled = local_filter(np.roll(pair.half1, shift, (0, 1, 2)), np.roll(pair.half2, shift, (0, 1, 2)),
                          pixel_size_angstrom=1.0)
    expected = np.roll(base.full, shift, (0, 1, 2))
    # every step is periodic, but the local statistics live on coarse grids (15-18 samples
    # for this box) and are interpolated linearly, so a shift that is not a multiple of their
    # spacing moves the weights by up to half a coarse sample: measured rms 1.4 %, CC 0.9999
    assert cc(rolled.full, expected) > 0.999
    assert np.sqrt(((rolled.full - expected) ** 2).mean() / (expected ** 2).mean()) < 0.03
    lf_err = np.abs(rolled.local_frequency - np.roll(base.local_frequency, shift, (0, 1, 2)))
    assert np.percentile(lf_err, 99) < 0.02  # a fraction of the narrowest band spacing (0.04)


@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_f_odd_prime_and_non_cubic_boxes(shape):
    pair = synthetic_pair(shape, kind="rigid_flexible", noise_std=0.7, seed=6)
    r = local_filter(pair.half1, pair.half2, pixel_size_angstrom=1.3, mask=pair.mask)
    assert r.full.shape == shape and r.local_resolution_angstrom.shape == shape
    raw = (pair.half1 + pair.half2) / 2
    assert cc(r.full, pair.truth) > cc(raw, pair.truth) + 0.1  # removing noise helps a lot here
    assert np.all(r.local_resolution_angstrom >= 2 * 1.3 - 1e-4)  # never beyond Nyquist


@pytest.mark.skipif("pyfftw" not in _fft.available_backends(), reason="pyFFTW not installed")
@pytest.mark.parametrize("shape", [(48, 48, 48), (31, 37, 29)])
def test_f_pyfftw_and_scipy_give_the_same_result(shape):
    pair = synthetic_pair(shape, kind="rigid_flexible", noise_std=0.7, seed=7)
    a = local_filter(pair.half1, pair.half2, pixel_size_angstrom=1.0, backend="pyfftw")
    b = local_filter(pair.half1, pair.half2, pixel_size_angstrom=1.0, backend="scipy")
    scale = np.abs(a.full).max()
    # both round float32 differently at ~1e-7 relative per transform; weights amplify
    # differences only where S/(S+N) is steep, so 1e-4 of the map's range is ample
    np.testing.assert_allclose(a.full, b.full, atol=1e-4 * scale)
    np.testing.assert_allclose(a.half2, b.half2, atol=1e-4 * scale)
    np.testing.assert_allclose(a.local_frequency, b.local_frequency, atol=2e-3)


def test_mask_gives_masked_fsc_and_optionally_masks_the_outputs():
    pair = synthetic_pair((40, 40, 40), noise_std=0.7, seed=8)
    r = local_filter(pair.half1, pair.half2, pixel_size_angstrom=1.0, mask=pair.mask,
                     params=FilterParams(apply_mask=True, keep_band_snr=True))
    assert r.fsc_masked is not None
    # masking removes solvent noise, so the masked FSC stays above 0.143 further out
    assert r.fsc_masked.crossing(0.143) > r.fsc_unmasked.crossing(0.143)
    assert np.all(r.full[pair.mask == 0] == 0)
    assert r.band_snr is not None and r.band_snr.shape == (r.bands.n_bands, 40, 40, 40)
    assert local_filter(pair.half1, pair.half2, pixel_size_angstrom=1.0).fsc_masked is None


def test_progress_is_reported_up_to_one():
    pair = synthetic_pair((32, 32, 32), noise_std=0.7, seed=9)
    seen: list[float] = []
    local_filter(pair.half1, pair.half2, pixel_size_angstrom=1.0, progress=lambda f, m: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and all(b >= a for a, b in zip(seen, seen[1:]))


def test_a_planned_filter_is_reusable_and_checks_the_shape():
    pair = synthetic_pair((32, 32, 32), noise_std=0.7, seed=10)
    lf = LocalFilter((32, 32, 32), pixel_size_angstrom=1.0)
    first = lf(pair.half1, pair.half2)
    again = lf(pair.half1, pair.half2)
    np.testing.assert_array_equal(first.full, again.full)
    with pytest.raises(ValueError, match=r"half-maps have shape \(32, 32, 31\), but this LocalFilter was planned for \(32, 32, 32\)"):
        lf(pair.half1[..., :31], pair.half2[..., :31])


@pytest.mark.parametrize("make,exc,message", [
    (lambda a: (a, a[:-1]), ValueError, r"half1 and half2 must have the same shape"),
    (lambda a: (np.where(a > 2, np.nan, a), a), ValueError, r"half1 has \d+ non-finite \(NaN or infinite\) values"),
    (lambda a: (np.zeros_like(a), a), ValueError, r"half1 is constant"),
    (lambda a: (a.astype(np.complex64), a), TypeError, r"half1 must be a real float or integer array, got dtype complex64"),
    (lambda a: (a[0], a[0]), ValueError, r"half1 must be a 3-D volume"),
])
def test_bad_volumes_get_clear_errors(make, exc, message, rng):
    a = rng.standard_normal((16, 16, 16)).astype(np.float32)
    h1, h2 = make(a)
    with pytest.raises(exc, match=message):
        local_filter(h1, h2, pixel_size_angstrom=1.0)


@pytest.mark.parametrize("mask,message", [
    (np.full((16, 16, 16), 1.5, np.float32), r"mask values must lie in \[0, 1\], found min 1.5 and max 1.5"),
    (np.zeros((16, 16, 16), np.float32), r"mask is all zero"),
    (np.ones((16, 16, 8), np.float32), r"mask must have the shape of the half-maps \(16, 16, 16\), got \(16, 16, 8\)"),
])
def test_bad_masks_get_clear_errors(mask, message, rng):
    a = rng.standard_normal((16, 16, 16)).astype(np.float32)
    with pytest.raises(ValueError, match=message):
        local_filter(a, a, pixel_size_angstrom=1.0, mask=mask)


@pytest.mark.parametrize("kwargs,message", [
    ({"pixel_size_angstrom": 0.0}, r"pixel_size_angstrom must be a finite number > 0, got 0.0"),
    ({"pixel_size_angstrom": 1.0, "workers": 0}, r"workers must be an integer >= 1, got 0"),
])
def test_bad_options_get_clear_errors(kwargs, message, rng):
    a = rng.standard_normal((16, 16, 16)).astype(np.float32)
    with pytest.raises(ValueError, match=message):
        local_filter(a, a, **kwargs)


@pytest.mark.parametrize("field,value", [("band_ratio", 1.0), ("window_wavelengths", -1), ("criterion", 1.5),
                                         ("noise_threshold", float("nan")), ("stats_grid", 2)])
def test_params_validate_themselves(field, value):
    with pytest.raises(ValueError, match=f"FilterParams.{field} must be"):
        FilterParams(**{field: value})
