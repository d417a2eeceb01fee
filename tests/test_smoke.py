import numpy as np

from locband import local_filter


def test_identical_halves_round_trip(rng: np.random.Generator) -> None:
    x = rng.standard_normal((32, 32, 32)).astype(np.float32)
    r = local_filter(x, x, pixel_size_angstrom=1.0)
    # float32 rounding of ~40 FFTs over values of order 1
    np.testing.assert_allclose(r.full, x, atol=1e-5)
