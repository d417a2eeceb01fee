"""A constant added to both halves, or a common scale, changes no reported number (issue 8, items 5 and 10).

The engine removes each half's mean (solvent level) before anything else, including before a
mask is applied, and works on both halves divided by one power of two near their spread; the
outputs get both back.
"""

import numpy as np
import pytest

from locband import FilterParams, global_wiener_filter, local_filter
from locband.engine.fsc import fsc
from locband.engine.synthetic import synthetic_pair

PX = 1.4
PARAMS = FilterParams(keep_band_snr=True)

# Storing X + 10 in float32 rounds every voxel by up to half an ulp of 10 (4.8e-7), about 1e-6
# of these maps' spread, and a factor 1e12 rounds by 6e-8 relative: the inputs themselves differ
# by that much. FSCs then move by ~1e-6 (measured 5e-7), the outputs by ~1e-6 of their range
# (measured 2e-6), the local resolution by ~1e-5 cycles/voxel (measured 2.3e-5: the crossing
# divides by the local FSC's slope). The tolerances leave 20-40x room; the defects moved them by
# 0.74 (masked FSC), 0.025 and 0.18 (local frequency) and 1-25 % (outputs).
FSC_TOL = 1e-5
FREQ_TOL = 1e-3  # cycles/voxel: 2.5 % of the narrowest band spacing (0.04)
MAP_TOL = 5e-5  # of the map's largest value
# band SNR: relative 1e-3, plus 1e-5 absolute where the garrote that removes noise takes small
# SNRs (~0.005) to zero with a steep slope (main, at a scale of 37.5: 8e-6 apart there)
SNR_RTOL, SNR_ATOL = 1e-3, 1e-5


@pytest.fixture(scope="module")
def pair():
    return synthetic_pair((32, 32, 32), noise_std=0.7, seed=11)


@pytest.fixture(scope="module")
def base(pair):
    return local_filter(pair.half1, pair.half2, pixel_size_angstrom=PX, mask=pair.mask, params=PARAMS)


def _same_numbers(r, base, *, add=0.0, mul=1.0):
    for got, ref in ((r.fsc_unmasked, base.fsc_unmasked), (r.fsc_masked, base.fsc_masked)):
        np.testing.assert_allclose(got.fsc, ref.fsc, atol=FSC_TOL)
        for thr in (0.143, 0.5):
            assert got.crossing(thr) == pytest.approx(ref.crossing(thr), abs=FREQ_TOL)
    np.testing.assert_allclose(r.local_frequency, base.local_frequency, atol=FREQ_TOL)
    np.testing.assert_allclose(r.local_resolution_angstrom, base.local_resolution_angstrom, rtol=FREQ_TOL / 0.5)
    np.testing.assert_allclose(r.band_snr, base.band_snr, rtol=SNR_RTOL, atol=SNR_ATOL)
    for got, ref in ((r.full, base.full), (r.half1, base.half1), (r.half2, base.half2)):
        expected = ref.astype(np.float64) * mul + add
        assert np.abs(got - expected).max() <= MAP_TOL * np.abs(expected).max()


@pytest.mark.parametrize("c", [10.0, -3.5])
def test_a_constant_added_to_both_halves_changes_no_number(pair, base, c):
    r = local_filter(pair.half1 + np.float32(c), pair.half2 + np.float32(c), pixel_size_angstrom=PX, mask=pair.mask,
                     params=PARAMS)
    _same_numbers(r, base, add=c)


def test_the_masked_fsc_ignores_the_solvent_level(pair):
    ref = fsc(pair.half1, pair.half2, mask=pair.mask)
    shifted = fsc(pair.half1 + np.float32(10), pair.half2 + np.float32(-4), mask=pair.mask)
    np.testing.assert_allclose(shifted.fsc, ref.fsc, atol=FSC_TOL)


def test_the_global_wiener_filter_ignores_the_solvent_level(pair):
    ref = global_wiener_filter(pair.half1, pair.half2, mask=pair.mask)
    got = global_wiener_filter(pair.half1 + np.float32(10), pair.half2 + np.float32(10), mask=pair.mask)
    for g, r in zip(got, ref, strict=True):
        assert np.abs(g - (r + 10.0)).max() <= MAP_TOL * 10


@pytest.mark.parametrize("s", [1e12, 1e-12, 37.5])  # 37.5: a control that main passed already
def test_a_common_scale_changes_no_number(pair, base, s):
    r = local_filter(pair.half1 * np.float32(s), pair.half2 * np.float32(s), pixel_size_angstrom=PX,
                     mask=pair.mask, params=PARAMS)
    _same_numbers(r, base, mul=s)


@pytest.mark.parametrize("exponent", [40, -40, 80, -80])
def test_a_power_of_two_scale_changes_no_bit(pair, base, exponent):
    # the engine scales by powers of two, which float arithmetic carries out exactly: every
    # number is bit-identical and the maps scale exactly
    s = np.float32(2.0 ** exponent)
    r = local_filter(pair.half1 * s, pair.half2 * s, pixel_size_angstrom=PX, mask=pair.mask, params=PARAMS)
    np.testing.assert_array_equal(r.local_frequency, base.local_frequency)
    np.testing.assert_array_equal(r.local_resolution_angstrom, base.local_resolution_angstrom)
    np.testing.assert_array_equal(r.band_snr, base.band_snr)
    np.testing.assert_array_equal(r.fsc_masked.fsc, base.fsc_masked.fsc)
    np.testing.assert_array_equal(r.fsc_unmasked.fsc, base.fsc_unmasked.fsc)
    for got, ref in ((r.full, base.full), (r.half1, base.half1), (r.half2, base.half2)):
        np.testing.assert_array_equal(got, ref * s)


@pytest.mark.parametrize("s", [1e-30, 1e30])
def test_values_beyond_float32_fourier_range_are_refused(pair, s):
    with pytest.raises(ValueError, match=r"half1 and half2 values spread \S+ about their means: expected between "
                                         r"1e-25 and 1e\+25 \(rescale the maps\)"):
        local_filter(pair.half1 * np.float32(s), pair.half2 * np.float32(s), pixel_size_angstrom=PX)
