"""A fake relion_refine job folder for the --external_reconstruct hook tests.

Files are written the way relion_refine writes them before calling the hook (shape
(P, P, P//2+1) float32 MRC with voxel size 0, STAR in RELION's text layout), from a known map.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from relion_hook_files import write_external_reconstruct_inputs
from relion_sums import simulate_half_sums

REPO = Path(__file__).resolve().parents[2]
WRAPPER = REPO / "wrappers" / "locband-relion-reconstruct"


def random_field(n: int, *, seed: int = 0, width: float = 0.25) -> np.ndarray:
    """A stationary band-limited random map filling the box: the same SNR everywhere."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(n)
    s = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2)
    spec = np.exp(-(s / width) ** 2) * (rng.normal(size=(n, n, n)) + 1j * rng.normal(size=(n, n, n)))
    out = np.fft.ifftn(spec).real
    return out / out.std()


def write_job(job: Path, *, n: int = 24, iteration: int = 2, truth: np.ndarray | None = None,
              noise_power: float = 1000.0, seed: int = 0, halves: tuple[int, ...] = (1, 2), kind: str = "class",
              pixel_size_angstrom: float | None = None, split: bool = True) -> dict[int, str]:
    """Write the hook inputs of one iteration; returns half (0 = joined/single) -> STAR path (relative)."""
    job.mkdir(parents=True, exist_ok=True)
    t = random_field(n, seed=seed) if truth is None else truth
    d1, d2, w, tau2, fsc = simulate_half_sums(t, noise_power=noise_power, seed=seed + 1)
    if not split:
        fsc = np.zeros_like(fsc)
    out = {}
    for h in halves:
        tag = f"_half{h}" if h else ""
        root = job / f"run_it{iteration:03d}{tag}_{kind}001"
        data = {1: d1, 2: d2, 0: (d1 + d2)}[h]
        weight = w * (2 if h == 0 else 1)
        star = write_external_reconstruct_inputs(root, data, weight, tau2=tau2, fsc=fsc, ori_size=n, current_size=n,
                                                 pixel_size_angstrom=pixel_size_angstrom)
        out[h] = str(star)
    return out


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO / "plugin") + os.pathsep + e.get("PYTHONPATH", "")
    e["LOCBAND_PYTHON"] = sys.executable
    return e


def start(star: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    """Start the wrapper the way relion_refine does (sh -c "<executable> <star>")."""
    return subprocess.Popen(["sh", "-c", f"{WRAPPER} {' '.join(args)} {star}"], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
