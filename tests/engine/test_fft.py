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


@pytest.mark.parametrize("backend", _fft.available_backends())
@pytest.mark.parametrize("shape", SHAPES)
def test_transforms_into_buffers_and_in_place(shape, backend, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    ref = _fft.rfftn(x, backend="scipy")
    buf = np.empty_like(ref)
    assert _fft.rfftn(x, backend=backend, out=buf) is buf
    # float32 transforms of unit-variance data: rounding at ~1e-7 relative per stage
    np.testing.assert_allclose(buf, ref, atol=1e-6)
    view = _fft.real_view(buf, shape)  # the inverse in place, in the spectrum's own memory
    y = _fft.irfftn(buf, shape, backend=backend, overwrite_input=True, out=view)
    assert np.shares_memory(y, buf)
    np.testing.assert_allclose(y, x, atol=1e-5)


@pytest.mark.parametrize("backend", _fft.available_backends())
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_transform_of_volumes_made_slab_by_slab(shape, backend, rng, monkeypatch):
    from locband.engine import _slabs

    monkeypatch.setattr(_slabs, "_SLAB_ELEMENTS", 100)  # a plane or two per slab
    x = rng.standard_normal(shape).astype(np.float32)
    bufs = [np.empty(shape[:-1] + (shape[-1] // 2 + 1,), np.complex64) for _ in range(2)]
    view = _fft.real_view(bufs[0], shape)
    view[...] = x  # the first volume is transformed in place: produce reads the planes it replaces
    _fft.rfftn_slabs(lambda z0, z1: (view[z0:z1] * 2, x[z0:z1] ** 2), shape, bufs, backend=backend, workers=2)
    np.testing.assert_allclose(bufs[0], 2 * _fft.rfftn(x, backend="scipy"), atol=2e-6)
    np.testing.assert_allclose(bufs[1], _fft.rfftn(x ** 2, backend="scipy"), atol=1e-5)


@pytest.mark.parametrize("backend", _fft.available_backends())
@pytest.mark.parametrize(("shape", "crop"), [((16, 16, 16), (6, 5, 7)), ((31, 37, 29), (9, 12, 8)),
                                             ((40, 48, 56), (40, 48, 56)), ((17, 12, 9), (4, 4, 4))])
def test_cropped_transform_equals_crop_of_the_full_one(shape, crop, backend, rng, monkeypatch):
    from locband.engine import _slabs
    from locband.engine._grid import crop_indices

    monkeypatch.setattr(_slabs, "_SLAB_ELEMENTS", 300)
    x = rng.standard_normal(shape).astype(np.float32)
    out = _fft.rfftn_cropped(lambda z0, z1: (x[z0:z1], -x[z0:z1]), shape, crop, count=2, backend=backend,
                             workers=2)
    want = _fft.rfftn(x, backend="scipy")[np.ix_(*crop_indices(shape, crop))]
    assert out[0].shape == want.shape
    np.testing.assert_allclose(out[0], want, atol=1e-6)  # float32 rounding, as above
    np.testing.assert_allclose(out[1], -want, atol=1e-6)
