import numpy as np
import pytest

from locband.engine._grid import crop_blocks, crop_indices, crop_rows, frequency_squared, frequency_squared_rows

CASES = [((16, 12, 9), (7, 6, 5)), ((16, 16, 16), (16, 16, 16)), ((31, 37, 29), (8, 9, 4)), ((10, 10, 10), (1, 2, 3))]


@pytest.mark.parametrize(("full", "crop"), CASES)
def test_crop_blocks_and_rows_pick_what_crop_indices_picks(full, crop, rng):
    a = rng.standard_normal(full[:-1] + (full[-1] // 2 + 1,))
    want = a[np.ix_(*crop_indices(full, crop))]
    got = np.full_like(want, np.nan)
    for in_full, in_crop in crop_blocks(full, crop):
        got[in_crop] = a[in_full]
    np.testing.assert_array_equal(got, want)
    rows_full = crop_indices(full, crop)[0]
    for r0, r1 in ((0, crop[0]), (0, 1), (crop[0] // 2, crop[0])):
        picked = np.concatenate([np.arange(full[0])[f] for f, _ in crop_rows(full[0], crop[0], r0, r1)])
        np.testing.assert_array_equal(picked, rows_full[r0:r1])


@pytest.mark.parametrize(("full", "crop"), CASES)
def test_frequency_rows_are_planes_of_the_whole_grid(full, crop):
    steps = tuple(1.0 / n for n in full)
    np.testing.assert_array_equal(frequency_squared_rows(crop, steps, 1, crop[0]), frequency_squared(crop, steps)[1:])
