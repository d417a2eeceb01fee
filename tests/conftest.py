"""Shared fixtures: small synthetic volumes with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from locband.engine.synthetic import gaussian_blur


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def stationary_pair(shape: tuple[int, ...], noise_std: float, seed: int = 5):
    """A signal that fills the whole box (uniform SNR everywhere) plus independent noise."""
    rng = np.random.default_rng(seed)
    truth = gaussian_blur(rng.standard_normal(shape).astype(np.float32), 1.2)
    truth /= truth.std()
    h1 = truth + np.float32(noise_std) * rng.standard_normal(shape).astype(np.float32)
    h2 = truth + np.float32(noise_std) * rng.standard_normal(shape).astype(np.float32)
    return truth, h1, h2


@pytest.fixture
def stationary():
    return stationary_pair
