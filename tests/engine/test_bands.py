import numpy as np
import pytest

from locband.engine.bands import band_centres, band_layout, band_weight
from locband.engine.params import FilterParams


@pytest.mark.parametrize("shape", [(64, 64, 64), (31, 37, 29), (256, 256, 256)])
def test_bands_are_a_partition_of_unity(shape):
    p = FilterParams()
    c = band_centres(shape, ratio=p.band_ratio, min_spacing_shells=p.min_band_spacing_shells)
    s = np.linspace(0, np.sqrt(3) / 2, 5001)  # up to the cube corner
    total = sum(band_weight(s, c, b) for b in range(len(c)))
    # float32 sin^2 + cos^2 of the same argument
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_band_edges_are_smooth_and_bounded():
    c = band_centres((64, 64, 64), ratio=2 ** (1 / 3), min_spacing_shells=2)
    s = np.linspace(0, 0.6, 60001)
    for b in range(len(c)):
        w = band_weight(s, c, b)
        assert w.min() >= 0 and w.max() <= 1
        # continuous: with a step of 1e-5 cycles/voxel no jump exceeds the cos^2 slope,
        # pi/2 / (narrowest spacing 1/32) * 1e-5 = 5e-4
        assert np.abs(np.diff(w)).max() < 6e-4
        assert w[np.argmin(np.abs(s - c[b]))] == pytest.approx(1.0, abs=1e-3)


def test_centres_geometric_then_linear():
    c = band_centres((128, 128, 128), ratio=2 ** 0.5, min_spacing_shells=2)
    assert c[0] == 0 and c[-1] == 0.5 and np.all(np.diff(c) > 0)
    step = 2 / 128
    assert np.all(np.diff(c) >= step - 1e-12)
    top = c[c >= 0.1]
    np.testing.assert_allclose(top[1:] / top[:-1], 2 ** 0.5, rtol=1e-12)


def test_layout_grids_hold_their_bands_and_windows_grow_with_wavelength():
    lay = band_layout((96, 96, 96), FilterParams())
    for b, grid in enumerate(lay.grid_shapes):
        top = lay.centres[b + 1] if b + 1 < lay.n_bands else 0.5
        # the cropped grid's Nyquist (m / 2 / n) covers the band's top frequency with margin
        assert all(m == 96 or m / 2 / 96 >= 1.5 * top - 1e-9 for m in grid)
    sig = np.array(lay.sigma_voxels[1:])
    assert np.all(np.diff(sig) <= 1e-9)  # higher bands, shorter wavelengths, smaller windows
    assert all(n > 1 for n in lay.n_effective)
