"""Real-space priors of the interpretation map: known answers for each one."""

import numpy as np
import pytest

from locband.engine.denoise_params import DenoiseParams
from locband.engine.priors import (
    EnvelopeSpec,
    apply_positivity,
    envelope_from_map,
    flatten_solvent,
    gaussian_smooth,
    prior_density,
    remove_isolated_blobs,
    solvent_level,
)
from locband.engine.units import ANGSTROM3_PER_DALTON, bfactor_to_voxels, molecular_volume_voxels


def _ball(shape, centre, radius):
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) <= radius ** 2


def test_positivity_raises_exactly_the_negative_region_to_the_solvent_level(rng):
    vol = rng.standard_normal((20, 20, 20)).astype(np.float32)
    out = apply_positivity(vol, 0.25)
    below = vol < 0.25
    assert below.any() and (~below).any()
    np.testing.assert_array_equal(out[below], np.float32(0.25))
    np.testing.assert_array_equal(out[~below], vol[~below])
    rho, level = prior_density(vol, envelope=None, positivity=True, connectivity=False)
    assert level == pytest.approx(float(np.median(vol)))  # no envelope: the median
    assert rho.min() == 0.0 and np.all(rho[vol <= level] == 0.0)
    # without positivity the magnitude counts: negative density is density too
    mag, _ = prior_density(vol, envelope=None, positivity=False, connectivity=False)
    np.testing.assert_allclose(mag, np.abs(vol - np.float32(level)), atol=1e-6)


def test_flat_solvent_outside_a_known_mask_and_untouched_inside(rng):
    shape = (24, 24, 24)
    inside = _ball(shape, (12, 12, 12), 7)
    env = inside.astype(np.float32)
    vol = rng.standard_normal(shape).astype(np.float32) + 5 * env
    level = solvent_level(vol, env)
    assert level == pytest.approx(float(vol[~inside].mean()), rel=1e-6)  # mean of the solvent
    flat = flatten_solvent(vol, env, level)
    np.testing.assert_allclose(flat[~inside], np.float32(level), atol=1e-6)
    np.testing.assert_allclose(flat[inside], vol[inside], atol=1e-6)
    rho, _ = prior_density(vol, envelope=env, positivity=True, connectivity=False)
    assert np.all(rho[~inside] == 0.0)


def test_molecular_volume_from_a_known_mass():
    # 1.23 Å^3/Da: 100 kDa is 123,000 Å^3, i.e. 36,444 voxels of 1.5 Å
    assert ANGSTROM3_PER_DALTON == 1.23
    assert molecular_volume_voxels(100.0, pixel_size_angstrom=1.5) == pytest.approx(123000 / 3.375)
    assert bfactor_to_voxels(-90.0, pixel_size_angstrom=1.5) == pytest.approx(-40.0)
    p = DenoiseParams.from_physical(pixel_size_angstrom=1.5, molecular_mass_kda=100.0, bfactor_angstrom2=-90.0)
    assert p.molecular_volume_voxels == pytest.approx(123000 / 3.375)
    assert p.sharpen == "global" and p.bfactor_voxels == pytest.approx(-40.0)
    assert p.sharpen_from == pytest.approx(0.15)  # 10 Å at 1.5 Å/voxel
    assert DenoiseParams.from_physical(pixel_size_angstrom=1.0, sharpen=False).sharpen == "off"
    with pytest.raises(ValueError, match="B-factor was given together with no sharpening"):
        DenoiseParams.from_physical(pixel_size_angstrom=1.0, sharpen=False, bfactor_angstrom2=-50.0)


def test_envelope_from_a_known_volume_holds_that_many_core_voxels():
    shape = (32, 32, 32)
    grids = np.meshgrid(*[np.arange(n) - 16.0 for n in shape], indexing="ij")
    smoothed = np.exp(-sum(g ** 2 for g in grids) / 60.0).astype(np.float32)  # distinct values, radial
    n = 2000
    env = envelope_from_map(smoothed, EnvelopeSpec(sigma_voxels=2.0, noise_sd=1.0, volume_voxels=n),
                            connectivity=False)
    core = env == 1.0
    # the n highest voxels are the core; ties at the threshold value (a radial map has shells of
    # equal values) may add a few voxels, never more than one shell (~1 % here)
    assert n <= np.count_nonzero(core) <= 1.02 * n
    assert env.min() == 0.0 and env[16, 16, 16] == 1.0


def test_envelope_follows_the_density_and_drops_small_islands(rng):
    shape = (40, 40, 40)
    big = _ball(shape, (20, 20, 20), 8)
    island = _ball(shape, (4, 4, 4), 1.5)
    vol = (big | island).astype(np.float32) * 3 + 0.2 * rng.standard_normal(shape).astype(np.float32)
    sm = gaussian_smooth(vol, 1.0)
    spec = EnvelopeSpec(sigma_voxels=1.0, noise_sd=0.2 / (2 * np.sqrt(np.pi)) ** 1.5, z=3.0)
    kept = envelope_from_map(sm, spec, connectivity=False)
    dropped = envelope_from_map(sm, spec, connectivity=True)
    assert np.all(kept[_ball(shape, (20, 20, 20), 6)] == 1.0) and np.all(dropped[_ball(shape, (20, 20, 20), 6)] == 1.0)
    assert kept[4, 4, 4] == 1.0  # without connectivity the island is part of the envelope
    assert dropped[4, 4, 4] == 0.0  # with it, an island of ~1 % of the main body is gone
    assert dropped[20, 20, 36] == 0.0  # far solvent


def test_connectivity_removes_a_small_isolated_blob_and_keeps_big_and_near_ones():
    shape = (48, 48, 48)
    big = _ball(shape, (24, 24, 24), 9)
    far = _ball(shape, (5, 5, 5), 2)
    near = _ball(shape, (24, 24, 36), 1.5)  # 1.5 voxels of gap from the big blob's surface
    density = (big | far | near).astype(np.float32)
    out = remove_isolated_blobs(density, threshold=0.5, min_voxels=200, distance_voxels=4.0)
    assert np.all(out[big] == 1.0)
    assert np.all(out[near] == 1.0)  # a ligand-like blob next to the main density stays
    assert np.all(out[far] == 0.0)  # a small blob far from it is noise
    # with no blob big enough to count as main density, the largest one is kept as such
    alone = remove_isolated_blobs(far.astype(np.float32), threshold=0.5, min_voxels=1e6, distance_voxels=4.0)
    assert np.all(alone[far] == 1.0)


@pytest.mark.parametrize("name,value,message", [
    ("cycles", 0, "cycles must be an integer in"),
    ("sharpen", "sometimes", "sharpen must be one of"),
    ("significance_power", -1.0, "significance_power must be"),
    ("max_gain", 0.5, "max_gain must be"),
    ("molecular_volume_voxels", -3.0, "molecular_volume_voxels must be"),
])
def test_denoise_params_reject_bad_values(name, value, message):
    with pytest.raises(ValueError, match=message):
        DenoiseParams(**{name: value})


def test_shell_scaled_correlation_ignores_a_per_shell_rescaling(rng):
    from locband.engine import _fft
    from locband.engine.fsc import shell_index
    from locband.engine.metrics import real_space_correlation, shell_scaled_correlation

    shape = (32, 32, 32)
    truth = gaussian_smooth(rng.standard_normal(shape).astype(np.float32), 1.0)
    idx, n = shell_index(shape)
    gain = np.exp(30.0 * (np.arange(n + 1) / 32.0) ** 2).astype(np.float32)  # one factor per shell
    sharpened = _fft.irfftn(_fft.rfftn(truth, backend="scipy") * gain[idx], shape, backend="scipy")
    # a sharpened copy of the truth is a different map (plain correlation well below 1) that
    # knows exactly as much: after the per-shell scale it is the truth (float32 rounding only)
    assert real_space_correlation(sharpened, truth) < 0.9
    assert shell_scaled_correlation(sharpened, truth) == pytest.approx(1.0, abs=1e-5)
    noisy = truth + rng.standard_normal(shape).astype(np.float32)
    assert shell_scaled_correlation(noisy, truth) < 0.9
