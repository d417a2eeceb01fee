import numpy as np
import pytest

from locband.engine._interp import resample_linear, resample_rows


def test_constant_stays_constant_and_same_grid_is_identity(rng):
    c = np.full((5, 6, 7), 3.5, np.float32)
    np.testing.assert_allclose(resample_linear(c, (20, 13, 9)), 3.5, rtol=1e-6)
    x = rng.standard_normal((5, 6, 7)).astype(np.float32)
    assert resample_linear(x, x.shape) is x


def test_upsampling_keeps_samples_and_interpolates_linearly():
    x = np.zeros((4, 4, 4), np.float32)
    x[1, 2, 3] = 1.0
    y = resample_linear(x, (8, 8, 8))
    assert y[2, 4, 6] == 1.0  # coarse sample j sits at fine sample 2j
    assert y[3, 4, 6] == 0.5  # half way to the next (zero) sample
    assert y[2, 4, 7] == 0.5  # and periodic along x (sample 3 -> 0)


@pytest.mark.parametrize(("src", "dst"), [((15, 17, 9), (64, 60, 61)), ((20, 20, 20), (20, 40, 33)),
                                          ((45, 45, 45), (243, 243, 243)), ((9, 8, 8), (8, 16, 8))])
def test_rows_are_the_rows_of_the_whole_resampled_volume(src, dst, rng):
    x = rng.standard_normal(src).astype(np.float32)
    full = resample_linear(x, dst)
    for z0, z1 in ((0, 3), (5, 7), (dst[0] - 4, dst[0]), (0, dst[0])):
        np.testing.assert_array_equal(resample_rows(x, dst, z0, z1), full[z0:z1])  # the same arithmetic


@pytest.mark.parametrize(("src", "dst"), [((64, 60, 61), (15, 17, 9)), ((40, 40, 40), (40, 33, 20)),
                                          ((256, 256, 256), (243, 243, 243)), ((31, 29, 37), (30, 29, 36))])
def test_downsampled_rows_are_the_linear_resampling_up_to_rounding(src, dst, rng):
    from locband.engine._interp import downsample_rows

    x = rng.random(src, dtype=np.float32)
    full = resample_linear(x, dst)
    for z0, z1 in ((0, 3), (5, 7), (dst[0] - 4, dst[0]), (0, dst[0])):
        # the same blends in another order of the axes: float32 rounding of values in [0, 1) only
        # (at most a few units of 6e-8)
        np.testing.assert_allclose(downsample_rows(x, dst, z0, z1), full[z0:z1], rtol=0, atol=5e-7)
    with pytest.raises(ValueError, match="no larger"):
        downsample_rows(x, tuple(n + 1 for n in src), 0, 1)
