"""Local sharpening and significance weighting: known answers."""

import numpy as np
import pytest

from locband.engine import _fft
from locband.engine._grid import frequency_squared
from locband.engine.bands import band_layout
from locband.engine.denoise import Denoiser
from locband.engine.denoise_params import DenoiseParams
from locband.engine.params import FilterParams
from locband.engine.sharpen import band_volumes, local_bfactor, sharpening_gain, significance_ramp


def test_band_volumes_cover_fourier_space_once():
    shape = (40, 40, 40)
    lay = band_layout(shape, FilterParams())
    v = band_volumes(shape, lay.centres)
    # the bands' weights add up to 1, but their squares do not: the sum of the squares lies
    # between 1/2 (two bands of weight 1/2 everywhere) and 1 (no overlap)
    assert 0.5 < v.sum() <= 1.0 + 1e-9
    assert np.all(v > 0)


def test_local_bfactor_recovers_a_known_falloff_and_its_gain_flattens_it():
    shape = (48, 48, 48)
    lay = band_layout(shape, FilterParams())
    vols = band_volumes(shape, lay.centres)
    c = np.asarray(lay.centres)
    b_true = 60.0  # voxels^2: amplitudes fall as exp(-B s^2 / 4), power as exp(-B s^2 / 2)
    power = vols * np.exp(-b_true * c ** 2 / 2)
    signal = np.broadcast_to(power[:, None, None, None], (len(c), 4, 4, 4)).astype(np.float32)
    sig = np.ones_like(signal)
    fit_from = 0.1
    b = local_bfactor(signal, sig, centres=lay.centres, volumes=vols, fit_from=fit_from, criterion=0.143)
    # a noise-free Gaussian fall-off is fitted exactly; float32 logs of powers down to e^-7.5
    # leave a relative error well under 1e-3
    np.testing.assert_allclose(b, b_true, rtol=1e-3)
    for k in np.nonzero(c >= fit_from)[0]:
        g = float(sharpening_gain(b[0, 0, 0], float(c[k]), start=fit_from, max_gain=1e6))
        # restored: every band's power density at that of the start frequency
        assert power[k] / vols[k] * g ** 2 == pytest.approx(np.exp(-b_true * fit_from ** 2 / 2), rel=1e-3)
    # too few significant bands: no B at all (no sharpening)
    weak = sig.copy()
    weak[c >= 0.2] = 0.0
    weak[(c >= fit_from) & (c < 0.2)] = 0.1  # below the criterion: does not count
    assert np.all(local_bfactor(signal, weak, centres=lay.centres, volumes=vols, fit_from=fit_from,
                                criterion=0.143) == 0)


def test_gain_is_capped_and_exactly_one_where_the_band_is_not_significant():
    assert float(sharpening_gain(1e4, 0.4, start=0.1, max_gain=10.0)) == pytest.approx(10.0, rel=1e-5)
    assert float(sharpening_gain(-1e4, 0.4, start=0.1, max_gain=10.0)) == pytest.approx(0.1, rel=1e-5)
    assert float(sharpening_gain(100.0, 0.05, start=0.1, max_gain=10.0)) == 1.0  # below the start
    q = np.array([0.0, 0.1, 0.143, 0.3, 0.5, 0.9], np.float32)
    np.testing.assert_allclose(significance_ramp(q, 0.143), [0, 0, 0, (0.3 - 0.143) / (0.5 - 0.143), 1, 1],
                               atol=1e-6)


def _falloff_pair(shape, b_vox, noise, seed):
    """A signal filling the box with a Gaussian amplitude fall-off exp(-B s^2 / 4), and two noisy halves."""
    rng = np.random.default_rng(seed)
    s2 = frequency_squared(shape, tuple(1.0 / n for n in shape))
    spec = _fft.rfftn(rng.standard_normal(shape).astype(np.float32), backend="scipy")
    truth = _fft.irfftn(spec * np.exp(np.float32(-b_vox / 4) * s2), shape, backend="scipy")
    truth /= truth.std()
    halves = [truth + np.float32(noise) * rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    return truth, halves


def _fitted_b(vol, lo, hi):
    """B of the radially averaged power of ``vol`` between ``lo`` and ``hi`` cycles/voxel."""
    shape = vol.shape
    s2 = frequency_squared(shape, tuple(1.0 / n for n in shape)).ravel()
    p = np.abs(_fft.rfftn(vol, backend="scipy")).ravel() ** 2
    sel = (s2 >= lo ** 2) & (s2 <= hi ** 2)
    edges = np.linspace(lo ** 2, hi ** 2, 8)
    x, y = [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        m = sel & (s2 >= a) & (s2 < b)
        x.append(s2[m].mean())
        y.append(np.log(p[m].mean()))
    return -2.0 * np.polyfit(x, y, 1)[0]


def test_local_sharpening_restores_a_known_falloff_where_significant():
    shape = (48, 48, 48)
    b_true = 60.0
    truth, (h1, h2) = _falloff_pair(shape, b_true, noise=0.02, seed=3)
    assert _fitted_b(truth, 0.1, 0.3) == pytest.approx(b_true, rel=0.1)  # the test signal itself
    base = DenoiseParams(sharpen="off", solvent_flattening=False, consistency=False, sharpen_from=0.1)
    flat = Denoiser(shape, pixel_size_angstrom=1.0, params=base)(h1, h2).full
    sharp = Denoiser(shape, pixel_size_angstrom=1.0, params=DenoiseParams(
        sharpen="local", solvent_flattening=False, consistency=False, sharpen_from=0.1))(h1, h2).full
    # unsharpened, the fall-off stays; sharpened, it is gone between 10 Å-equivalent and the
    # bands still at full significance: |B| below 15 % of the input's (band-wise gains are
    # piecewise, and the smooth band edges interpolate between them)
    assert _fitted_b(flat, 0.1, 0.3) == pytest.approx(b_true, rel=0.15)
    assert abs(_fitted_b(sharp, 0.1, 0.3)) < 0.15 * b_true


def test_global_bfactor_applies_relion_sign():
    shape = (40, 40, 40)
    truth, (h1, h2) = _falloff_pair(shape, 60.0, noise=0.02, seed=4)
    common = dict(solvent_flattening=False, consistency=False)
    flat = Denoiser(shape, pixel_size_angstrom=1.0, params=DenoiseParams(sharpen="off", **common))(h1, h2).full
    sharp = Denoiser(shape, pixel_size_angstrom=1.0, params=DenoiseParams(
        sharpen="global", bfactor_voxels=-60.0, **common))(h1, h2).full
    # B = -60 voxels^2 undoes the fall-off of +60: what is left is the unsharpened fit minus
    # 60, within the same 15 % as above
    assert _fitted_b(sharp, 0.1, 0.3) == pytest.approx(_fitted_b(flat, 0.1, 0.3) - 60.0, abs=0.15 * 60.0)


def test_a_band_of_pure_noise_is_suppressed(rng):
    shape = (40, 40, 40)
    h1 = rng.standard_normal(shape).astype(np.float32)
    h2 = rng.standard_normal(shape).astype(np.float32)
    r = Denoiser(shape, pixel_size_angstrom=1.0)(h1, h2)
    # as the linear filter (which keeps ~0.05 % of the power of pure noise): at most 2 % of the
    # input power, in every output; measured ~0.003 %
    for out, ref in ((r.full, (h1 + h2) / 2), (r.half1, h1), (r.half2, h2)):
        assert (out ** 2).mean() < 0.02 * (ref ** 2).mean()
