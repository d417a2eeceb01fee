"""What the global FSC may report, and what it says about a pair of half-maps (issue 8, items 2 and 4)."""

import numpy as np
import pytest

from locband import FSCCurve, local_filter
from locband.engine.fsc import fsc
from locband.engine.synthetic import synthetic_pair

# what main already had is imported here; what this issue added, inside the tests (so that the
# tests of each defect run, and fail, against the code before the fix)


def _curve(values, n=32):
    values = np.asarray(values, dtype=float)
    return FSCCurve(frequency=np.arange(values.size) / n, fsc=values)


# -- crossing: never outside the measured shells ------------------------------------------------
def test_a_curve_below_the_threshold_from_the_first_shell_has_no_crossing():
    # the inverted-contrast case of the issue: the mean (shell 0) and every shell anti-correlated;
    # interpolating from shell 0 extrapolated to 11 shells past shell 1 (0.60 Å at 1.5 Å/voxel)
    curve = _curve([-1.0, -0.9, -0.8, -0.5, -0.2, 0.0] + [0.0] * 11)
    assert curve.crossing(0.143) == 0.0
    from locband.engine.params import BELOW_AT_FIRST_SHELL
    from locband.engine.units import fsc_resolution_angstrom

    assert curve.crossing_status(0.143) == BELOW_AT_FIRST_SHELL
    assert fsc_resolution_angstrom(curve, 0.143, pixel_size_angstrom=1.5) == (None, BELOW_AT_FIRST_SHELL)


def test_a_curve_that_never_falls_below_reports_the_last_shell_as_a_bound():
    from locband.engine.params import ABOVE_TO_LAST_SHELL, BELOW_AT_FIRST_SHELL
    from locband.engine.units import describe_fsc_resolution, fsc_resolution_angstrom

    curve = _curve(np.linspace(1.0, 0.5, 17))
    assert curve.crossing(0.143) == pytest.approx(0.5)
    assert curve.crossing_status(0.143) == ABOVE_TO_LAST_SHELL
    value, status = fsc_resolution_angstrom(curve, 0.143, pixel_size_angstrom=1.5)
    assert value == pytest.approx(3.0) and status == ABOVE_TO_LAST_SHELL
    assert describe_fsc_resolution(value, status, threshold=0.143) == "at <= 3.00 Å (the last shell: never below 0.143)"
    assert describe_fsc_resolution(None, BELOW_AT_FIRST_SHELL, threshold=0.5) == \
        "not reached (below 0.5 from the first shell)"


def test_a_crossing_is_interpolated_between_the_two_shells_around_it():
    curve = _curve([1.0, 0.9, 0.6, 0.2, 0.1, 0.3, 0.0])
    # 0.2 at shell 3 and 0.1 at shell 4: 0.143 lies 0.57 of the way
    assert curve.crossing(0.143) == pytest.approx((3 + 0.57) / 32)
    assert curve.crossing_status(0.143) == "crossed"


@pytest.mark.parametrize("seed", range(20))
def test_no_curve_gives_a_crossing_outside_the_measured_shells(seed):
    rng = np.random.default_rng(seed)
    values = rng.uniform(-1, 1, 17)
    values[0] = rng.choice([-1.0, 0.0, 1.0])  # whatever shell 0 says (before the fix it was extrapolated from)
    curve = _curve(values)
    for thr in (0.143, 0.5, -0.3, 0.9):
        x = curve.crossing(thr)
        assert x == 0.0 or curve.frequency[1] <= x <= curve.frequency[-1], (thr, x)


def test_shell_0_is_one_by_convention_and_shells_carry_their_counts(rng):
    a, b = (rng.standard_normal((24, 24, 24)).astype(np.float32) for _ in range(2))
    curve = fsc(a - 5, b + 5)  # means of opposite sign
    assert curve.fsc[0] == 1.0
    assert curve.counts is not None and curve.counts[0] == 1.0
    assert curve.counts.sum() < 24 ** 3 and curve.counts[1] == 18  # 6 faces + 12 edges at |k| = 1


# -- independent halves ------------------------------------------------------------------------
@pytest.mark.parametrize("shape,noise", [((32, 32, 32), 0.5), ((32, 32, 32), 1.0), ((64, 64, 64), 1.0),
                                         ((64, 64, 64), 2.0), ((31, 37, 29), 0.5)])
def test_a_half_with_inverted_contrast_is_refused(shape, noise):
    pair = synthetic_pair(shape, noise_std=noise, seed=1)
    with pytest.raises(ValueError, match=r"half1 and half2 are anti-correlated at low resolution: mean FSC -0\.\d\d "
                                         r"up to 0\.\d+ cycles/voxel.*one half may have inverted contrast"):
        local_filter(pair.half1, -pair.half2, pixel_size_angstrom=1.5)


def test_pure_noise_is_never_taken_for_anti_correlation():
    # 5 sd of the pooled FSC: 300 noise pairs at the smallest and noisiest scale must all pass
    # (each would be refused with probability < 1e-5 even over every K)
    from locband.engine.fsc import check_independent_halves

    rng = np.random.default_rng(0)
    for _ in range(300):
        a, b = (rng.standard_normal((24, 24, 24)).astype(np.float32) for _ in range(2))
        check_independent_halves(fsc(a, b))


@pytest.mark.parametrize("make", [
    lambda h: h.copy(),                                      # the same map twice
    lambda h: h * np.float32(2.0),                           # perfectly correlated, different scale
    lambda h: h.astype(np.float16).astype(np.float32),       # a float16 (mode 12) copy of the same map
    lambda h: h + np.float32(1e-6) * np.random.default_rng(0).standard_normal(h.shape).astype(np.float32),
])
def test_identical_or_dependent_halves_are_refused(make):
    pair = synthetic_pair((32, 32, 32), noise_std=0.7, seed=2)
    with pytest.raises(ValueError, match=r"half1 and half2 are identical or nearly so: 1 - FSC averages \S+ over the "
                                         r"outer half of the shells .* must come from two separate halves of the data"):
        local_filter(pair.half1, make(pair.half1), pixel_size_angstrom=1.5)


def test_identical_low_passed_halves_are_refused_too():
    # nothing beyond 0.2 cycles/voxel: the check looks at the upper half of the shells that were measured
    pair = synthetic_pair((32, 32, 32), noise_std=0.7, seed=2)
    spec = np.fft.rfftn(pair.half1)
    k = np.sqrt(sum(g ** 2 for g in np.meshgrid(np.fft.fftfreq(32), np.fft.fftfreq(32), np.fft.rfftfreq(32),
                                                indexing="ij")))
    low = np.fft.irfftn(spec * (k < 0.2), s=(32, 32, 32), axes=(0, 1, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="identical or nearly so"):
        local_filter(low, low.copy(), pixel_size_angstrom=1.5)


@pytest.mark.parametrize("noise", [1e-4, 1e-3, 1e-2])
def test_genuinely_high_snr_halves_are_accepted(noise):
    # FSC at Nyquist 0.9993 (1e-4), 0.93 (1e-3): far higher than real data, still independent
    pair = synthetic_pair((32, 32, 32), noise_std=noise, seed=1)
    r = local_filter(pair.half1, pair.half2, pixel_size_angstrom=1.5, mask=pair.mask)
    assert r.fsc_unmasked.fsc[-1] > (0.99 if noise == 1e-4 else 0.0)
