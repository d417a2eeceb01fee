"""How the default band spacing and window size were chosen: a measured scan.

Run from the repository root (about two minutes on 2 cores):

    python integration/benchmarks/bench_band_defaults.py

For each setting it filters synthetic half-map pairs with a known truth (uniform particle,
rigid + flexible domains, a micelle-like shell; two noise levels each, 64^3) and prints the
gain in real-space correlation with the truth over the global FSC (Wiener) filter, per region,
with the mean and the worst case. The defaults in FilterParams are the setting with the best
mean whose worst case is not clearly worse than the others'.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugin"))

from locband.engine.local import local_filter  # noqa: E402
from locband.engine.metrics import real_space_correlation as cc  # noqa: E402
from locband.engine.params import FilterParams  # noqa: E402
from locband.engine.synthetic import synthetic_pair  # noqa: E402
from locband.engine.wiener import global_wiener_filter  # noqa: E402


def main() -> int:
    cases = [(kind, noise) for kind in ("uniform", "rigid_flexible", "micelle") for noise in (1.0, 2.0)]
    data = {c: synthetic_pair((64,) * 3, kind=c[0], noise_std=c[1], seed=1) for c in cases}
    glob = {c: global_wiener_filter(p.half1, p.half2, mask=p.mask)[0] for c, p in data.items()}
    heads = [f"{k[:5]}/{n:g}/{r[:4]}" for (k, n) in cases for r in data[(k, n)].regions]
    print("gain in CC with the truth over the global FSC filter (kind/noise/region), 64^3")
    print(f"{'band_ratio':>10} {'window':>6} {'cap':>5} " + " ".join(f"{h:>15}" for h in heads) + "     mean    worst")
    grid = itertools.product((2 ** 0.25, 2 ** (1 / 3), 2 ** 0.5), (1.5, 2.0, 3.0), (0.07, 0.1, 0.15))
    for ratio, window, cap in grid:
        params = FilterParams(band_ratio=ratio, window_wavelengths=window, max_window_fraction=cap)
        gains = []
        for c, p in data.items():
            r = local_filter(p.half1, p.half2, pixel_size_angstrom=1.0, mask=p.mask, params=params)
            gains += [cc(r.full, p.truth, weights=reg) - cc(glob[c], p.truth, weights=reg) for reg in p.regions.values()]
        mark = "  <- default" if params == FilterParams() else ""
        print(f"{ratio:>10.4f} {window:>6.1f} {cap:>5.2f} " + " ".join(f"{g:>+15.3f}" for g in gains)
              + f"  {np.mean(gains):>+7.4f}  {np.min(gains):>+7.4f}{mark}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
