"""Reconstruction from RELION's back-projected sums: known answers and error paths."""

from __future__ import annotations

import numpy as np
import pytest
from relion_sums import forward_sums, simulate_half_sums

from locband.engine import _fft
from locband.engine.metrics import real_space_correlation
from locband.engine.reconstruct import padded_size, reconstruct_from_sums, soft_mask_outside_map


def _blobs(n: int, seed: int = 0, sigma: float = 2.0) -> np.ndarray:
    """Smooth compact object well inside the box (no power near Nyquist, nothing in the corners)."""
    rng = np.random.default_rng(seed)
    c = np.arange(n) - n // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    out = np.zeros((n, n, n))
    for _ in range(12):
        p = rng.uniform(-n / 6, n / 6, 3)
        out += np.exp(-((z - p[0]) ** 2 + (y - p[1]) ** 2 + (x - p[2]) ** 2) / (2 * sigma ** 2))
    return out


def _weight(n: int, pad: float) -> np.ndarray:
    p = padded_size(n, pad)
    kz = np.fft.fftfreq(p, 1.0 / p)
    kx = np.arange(p // 2 + 1)
    r = np.sqrt(kz[:, None, None] ** 2 + kz[None, :, None] ** 2 + kx[None, None, :] ** 2)
    return 50.0 * np.exp(-r / p) + 1.0


@pytest.mark.parametrize(("n", "pad"), [(32, 2.0), (33, 2.0), (33, 1.0), (30, 1.5)])
def test_unregularised_round_trip_recovers_the_map(n: int, pad: float) -> None:
    truth = _blobs(n)
    w = _weight(n, pad)
    data = forward_sums(truth, padding_factor=pad, weight=w)
    out = reconstruct_from_sums(data, w, ori_size=n, padding_factor=pad, current_size=n)
    assert out.shape == (n, n, n) and out.dtype == np.float32
    # the only losses are the Fourier corners beyond |k| = N/2 (a Gaussian of sigma 2 voxels has
    # ~1e-5 of its power there) and float32 FFTs: 1e-3 of the peak is a wide margin for both
    np.testing.assert_allclose(out, truth, atol=1e-3 * truth.max())


def test_grey_scale_follows_relion_normalisation() -> None:
    # a unit DC term of the sums gives a constant map of 1 / (pad^3 N) before corner masking
    n, pad = 16, 2.0
    p = padded_size(n, pad)
    data = np.zeros((p, p, p // 2 + 1), np.complex64)
    data[0, 0, 0] = 1.0
    w = np.ones(data.shape)
    out = reconstruct_from_sums(data, w, ori_size=n, padding_factor=pad, current_size=n)
    # at the centre the sinc^2 correction is 1; float32 rounding only
    assert out[n // 2, n // 2, n // 2] == pytest.approx(1.0 / (pad ** 3 * n), rel=1e-5)


def test_map_prior_shrinks_by_the_wiener_factor() -> None:
    # constant weight w0 and constant tau2 t: every coefficient is scaled by w0 / (w0 + 1/(pad^3 t))
    n, pad = 24, 2.0
    truth = _blobs(n, seed=3)
    w0 = 4.0
    w = np.full((padded_size(n, pad),) * 2 + (padded_size(n, pad) // 2 + 1,), w0)
    data = forward_sums(truth, padding_factor=pad, weight=w)
    t = np.full(n // 2 + 1, 0.05)
    plain = reconstruct_from_sums(data, w, ori_size=n, padding_factor=pad, current_size=n)
    reg = reconstruct_from_sums(data, w, ori_size=n, padding_factor=pad, current_size=n, tau2=t)
    factor = w0 / (w0 + 1.0 / (pad ** 3 * 0.05))
    # linear in the coefficients except the corner soft mask (background ~0 for this object): 1e-4
    np.testing.assert_allclose(reg, plain * factor, atol=1e-4 * plain.max())


def test_zero_tau2_uses_relions_fallback_prior() -> None:
    # RELION: where tau2 = 0 the prior term is 1 / (0.001 W), so with a constant weight w0 every
    # coefficient is scaled by w0 / (w0 + 1000 / w0)
    n, pad, w0 = 24, 2.0, 4.0
    truth = _blobs(n, seed=4)
    p = padded_size(n, pad)
    w = np.full((p, p, p // 2 + 1), w0)
    data = forward_sums(truth, padding_factor=pad, weight=w)
    plain = reconstruct_from_sums(data, w, ori_size=n, padding_factor=pad, current_size=n,
                                  tau2=np.full(n // 2 + 1, 1e12))
    gone = reconstruct_from_sums(data, w, ori_size=n, padding_factor=pad, current_size=n, tau2=np.zeros(n // 2 + 1))
    # huge tau2: no regularisation (the term is 1e-13 of the weights)
    np.testing.assert_allclose(plain, truth, atol=1e-3 * truth.max())
    # linear scaling up to the corner soft mask (background ~0 for this object): 1e-6 of the peak
    np.testing.assert_allclose(gone, plain * w0 / (w0 + 1000.0 / w0), atol=1e-6 * plain.max())


def test_current_size_limits_the_resolution() -> None:
    n, pad = 32, 2.0
    rng = np.random.default_rng(5)
    noise = rng.standard_normal((n, n, n))
    w = _weight(n, pad)
    data = forward_sums(noise, padding_factor=pad, weight=w)
    out = reconstruct_from_sums(data, w, ori_size=n, padding_factor=pad, current_size=12)
    spec = np.abs(np.fft.rfftn(out)) ** 2
    f = np.fft.fftfreq(n)
    s = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + np.fft.rfftfreq(n)[None, None, :] ** 2)
    # beyond r_max = 6 shells only the corner soft mask and the gridding correction (real-space
    # multiplications, i.e. Fourier convolutions) spread power; measured 1.3 % beyond 8 shells for
    # white noise, against ~85 % for the unlimited map
    assert spec[s > 8 / n].sum() < 0.03 * spec.sum()


def test_simulated_halves_follow_relion_conventions() -> None:
    n = 24
    truth = _blobs(n, seed=6)
    d1, d2, w, tau2, fsc = simulate_half_sums(truth, noise_power=30.0, seed=1)
    p = padded_size(n, 2.0)
    assert d1.shape == d2.shape == w.shape == (p, p, p // 2 + 1)
    assert tau2.shape == fsc.shape == (n // 2 + 1,)
    # low shells carry the signal, the FSC falls with frequency (the object is smooth)
    assert fsc[1] > 0.9 and fsc[-2] < fsc[1]
    h1 = reconstruct_from_sums(d1, w, ori_size=n, padding_factor=2.0, current_size=n)
    h2 = reconstruct_from_sums(d2, w, ori_size=n, padding_factor=2.0, current_size=n)
    # independent noise: the halves differ, yet both follow the truth
    assert real_space_correlation(h1, h2) < 0.999
    assert real_space_correlation(h1, truth) > 0.8


@pytest.mark.parametrize("backend", _fft.available_backends())
def test_backends_agree(backend: str) -> None:
    n = 20
    truth = _blobs(n, seed=7)
    w = _weight(n, 2.0)
    data = forward_sums(truth, padding_factor=2.0, weight=w)
    ref = reconstruct_from_sums(data, w, ori_size=n, padding_factor=2.0, current_size=n, backend="scipy")
    out = reconstruct_from_sums(data, w, ori_size=n, padding_factor=2.0, current_size=n, backend=backend)
    # float32 FFTs of different libraries: rounding of order 1e-6 of the peak
    np.testing.assert_allclose(out, ref, atol=1e-5 * np.abs(ref).max())


def test_soft_mask_sets_corners_to_their_mean() -> None:
    n = 16
    rng = np.random.default_rng(8)
    vol = rng.standard_normal((n, n, n)).astype(np.float32)
    out = soft_mask_outside_map(vol)
    c = np.arange(n) - n // 2
    r = np.sqrt(c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2)
    np.testing.assert_array_equal(out[r < n / 2], vol[r < n / 2])
    corner = out[r > n / 2 + 3]
    # every corner voxel holds the same background value (float32 arithmetic)
    np.testing.assert_allclose(corner, corner[0], rtol=1e-6)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"data_shape": (64, 64, 32)}, r"data must have shape \(64, 64, 33\)"),
    ({"weight_shape": (64, 64, 64)}, r"weight must have shape"),
    ({"tau2": np.ones(5)}, r"tau2 must have ori_size // 2 \+ 1 = 17 shells, got 5"),
    ({"tau2": -np.ones(17)}, r"tau2 must be finite and >= 0"),
    ({"ori_size": 4}, r"ori_size must be an integer >= 8, got 4"),
    ({"padding_factor": 0.5}, r"padding_factor must be a number in \[1, 4\], got 0.5"),
    ({"current_size": 0}, r"current_size must be an integer >= 2"),
    ({"nan": True}, r"data has 1 non-finite values"),
])
def test_bad_input_is_named(kwargs: dict, match: str) -> None:
    n = kwargs.get("ori_size", 32)
    p = 64
    data = np.zeros(kwargs.get("data_shape", (p, p, p // 2 + 1)), np.complex64)
    if kwargs.get("nan"):
        data[1, 1, 1] = np.nan
    w = np.ones(kwargs.get("weight_shape", (p, p, p // 2 + 1)))
    with pytest.raises(ValueError, match=match):
        reconstruct_from_sums(data, w, ori_size=n, padding_factor=kwargs.get("padding_factor", 2.0),
                              current_size=kwargs.get("current_size", 32), tau2=kwargs.get("tau2"))
