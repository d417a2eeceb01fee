import numpy as np
import pytest

from locband.engine import _fft

SHAPES = [(16, 16, 16), (17, 12, 9), (31, 37, 29), (40, 48, 56)]


@pytest.mark.skipif("pyfftw" not in _fft.available_backends(), reason="pyFFTW not installed")
@pytest.mark.parametrize("shape", SHAPES)
def test_pyfftw_and_scipy_agree(shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    a = _fft.rfftn(x, backend="pyfftw")
    b = _fft.rfftn(x, backend="scipy")
    # float32 FFTs of unit-variance data: both libraries round at ~1e-7 relative per stage
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(_fft.irfftn(a, shape, backend="pyfftw"), _fft.irfftn(b, shape, backend="scipy"), atol=1e-5)


@pytest.mark.parametrize("backend", _fft.available_backends())
@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_and_forward_normalisation(shape, backend, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    f = _fft.rfftn(x, backend=backend)
    assert f.dtype == np.complex64 and f.shape == shape[:-1] + (shape[-1] // 2 + 1,)
    assert f[0, 0, 0].real == pytest.approx(x.mean(), abs=1e-6)  # norm="forward": DC is the mean
    keep = f.copy()
    y = _fft.irfftn(f, shape, backend=backend)
    np.testing.assert_array_equal(f, keep)  # the input survives unless overwrite_input
    np.testing.assert_allclose(y, x, atol=1e-5)  # float32 round trip


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="FFT backend must be 'pyfftw' or 'scipy', got 'cufft'"):
        _fft.rfftn(np.zeros((4, 4, 4), np.float32), backend="cufft")


@pytest.mark.skipif("pyfftw" not in _fft.available_backends(), reason="pyFFTW not installed")
def test_plans_are_made_once_per_transform():
    x = np.ones((13, 11, 7), np.float32)
    _fft.irfftn(_fft.rfftn(x), x.shape)
    before = _fft.plans_created()
    for _ in range(3):
        _fft.irfftn(_fft.rfftn(x), x.shape)
    assert _fft.plans_created() == before
