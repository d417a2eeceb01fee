"""``fsc()`` against a full-FFT reference written from the definition, for odd and even boxes.

The engine sums over the half spectrum (rfft) with each coefficient counted once or twice
(x = 0, and x = Nyquist of an even box, once; the rest twice, for their conjugate partners).
The reference sums over the full complex spectrum of ``numpy.fft.fftn`` in float64, with the
same shells (``round(|k| max(shape))``, nothing beyond Nyquist), so every multiplicity rule is
checked against the plain definition ``Re sum F1 F2* / sqrt(sum |F1|^2 sum |F2|^2)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from locband.engine import _fft
from locband.engine.fsc import fsc


def reference_fsc(h1: np.ndarray, h2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FSC per shell and the number of full-spectrum coefficients per shell (float64, full FFT)."""
    f1, f2 = np.fft.fftn(h1.astype(np.float64)), np.fft.fftn(h2.astype(np.float64))
    grids = np.meshgrid(*(np.fft.fftfreq(n) for n in h1.shape), indexing="ij")
    s = np.sqrt(sum(g ** 2 for g in grids))
    n = max(h1.shape)
    shells = np.rint(s * n).astype(int).ravel()
    keep = shells <= n // 2  # cube corners beyond Nyquist are no shell
    m = n // 2 + 1

    def per_shell(v: np.ndarray) -> np.ndarray:
        return np.bincount(shells[keep], weights=v.ravel()[keep], minlength=m)[:m]

    num = per_shell((f1 * np.conj(f2)).real)
    den = np.sqrt(per_shell(np.abs(f1) ** 2) * per_shell(np.abs(f2) ** 2))
    curve = num / den
    curve[0] = 1.0  # shell 0 is the mean alone: 1 by convention, as in the engine
    return curve, np.bincount(shells[keep], minlength=m)[:m].astype(float)


@pytest.mark.parametrize("backend", _fft.available_backends())
@pytest.mark.parametrize("shape", [(16, 16, 16), (17, 17, 17), (15, 16, 17), (18, 14, 13)],
                         ids=["even", "odd", "mixed-odd-x", "mixed-odd-x-2"])
def test_fsc_equals_the_full_fft_definition(shape: tuple[int, int, int], backend: str) -> None:
    rng = np.random.default_rng(sum(shape))
    truth = rng.standard_normal(shape)
    h1 = (truth + 0.8 * rng.standard_normal(shape)).astype(np.float32)
    h2 = (truth + 0.8 * rng.standard_normal(shape)).astype(np.float32)
    got = fsc(h1, h2, backend=backend)
    expected, counts = reference_fsc(h1, h2)
    n = max(shape)
    np.testing.assert_array_equal(got.frequency, np.arange(n // 2 + 1) / n)
    # float32 spectra against float64 ones: measured at most 6e-8 apart on these boxes (float32
    # rounding of the transforms); 2e-6 leaves room for other FFT libraries, while an error in the
    # multiplicities (a coefficient counted once instead of twice) moves a shell by 1e-3 or more
    np.testing.assert_allclose(got.fsc, expected, atol=2e-6, rtol=0)
    np.testing.assert_array_equal(got.counts, counts)  # every full-spectrum coefficient counted once


def test_the_reference_sees_a_miscounted_multiplicity() -> None:
    """The comparison above can fail: counting the Nyquist plane of an even box twice changes shells."""
    rng = np.random.default_rng(0)
    shape = (16, 16, 16)
    truth = rng.standard_normal(shape)
    h1, h2 = ((truth + rng.standard_normal(shape)).astype(np.float32) for _ in range(2))
    expected, _ = reference_fsc(h1, h2)
    f1, f2 = np.fft.rfftn(h1.astype(np.float64)), np.fft.rfftn(h2.astype(np.float64))
    grids = np.meshgrid(np.fft.fftfreq(16), np.fft.fftfreq(16), np.fft.rfftfreq(16), indexing="ij")
    shells = np.rint(np.sqrt(sum(g ** 2 for g in grids)) * 16).astype(int)
    wrong = np.full(9, 2.0)
    wrong[0] = 1.0  # the x = Nyquist plane counted twice: the mistake an odd/even slip makes
    keep = shells <= 8

    def per_shell(v: np.ndarray) -> np.ndarray:
        return np.bincount(shells[keep], weights=(v * wrong)[keep], minlength=9)[:9]

    miscounted = per_shell((f1 * np.conj(f2)).real) / np.sqrt(per_shell(np.abs(f1) ** 2) * per_shell(np.abs(f2) ** 2))
    assert np.max(np.abs(miscounted[1:] - expected[1:])) > 1e-3


def test_shell_counts_over_several_slabs_equal_the_whole_grids() -> None:
    """The counts are summed a slab of planes at a time (about 4 M coefficients each): on a box
    whose planes are that large every plane is its own slab, and the sums must equal the count
    over the whole grid of shell numbers."""
    from locband.engine._grid import rfft_multiplicity
    from locband.engine.fsc import _shell_counts, shell_index

    shape = (3, 2048, 2049)  # 2048 * 1025 coefficients per plane: one plane per slab, odd x
    idx, n_shells = shell_index(shape)
    mult = np.broadcast_to(rfft_multiplicity(shape), idx.shape)
    whole = np.bincount(idx.ravel(), weights=mult.ravel(), minlength=n_shells + 1)[:n_shells]
    np.testing.assert_array_equal(_shell_counts(shape), whole)
