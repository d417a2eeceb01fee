"""Benchmark of interpretation maps (`locband denoise`): quality against a known truth, the
no-hallucination probes, the bias of the built-in cross-validation, and the cost at 256^3.

Run from the repository root (several minutes on 2 cores; prints, asserts nothing):

    python integration/benchmarks/bench_denoise.py                 # 96^3 quality, probes, 256^3 cost
    python integration/benchmarks/bench_denoise.py --box 64 --no-cost

Quality (synthetic cases with known truth, see locband.engine.synthetic; 1 Å/voxel):
  CC       real-space correlation with the truth in the region (whole particle = the soft mask)
  sCC      the same after a per-shell scale fitted to the truth in that region (sharpening and
           any other per-shell rescaling change the spectrum, not what the map knows)
  FSC0.5, FSC0.143   resolution (Å) where the FSC of the whole box with the truth falls below
           0.5 and 0.143 (unmasked: a mask's edge leaks low-resolution power into high shells
           and makes masked crossings near Nyquist meaningless)
  solvent  RMS in the solvent (mask < 0.01) over RMS inside the particle, of the same map
Rows: raw average, global FSC (Wiener) filter, `locband filter`, `locband denoise` (defaults,
no mass), the same with the molecular mass given, with two cycles, and with each step or prior
switched off in turn.

No-hallucination probes:
  (a) halves whose signal above a frequency is replaced by independent "signal" (the truth's
      amplitudes, random phases, different in each half): above it the FSC with the truth and
      the power, next to the linear filter's;
  (b) two independent pure-noise halves: output RMS, largest value, and blobs above the 3-sigma
      contour of the raw average's noise;
  (c) a blob added to one half only (in the solvent and inside the particle), with a blob in
      both halves as the control: the fraction of its amplitude left in each output.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugin"))

from locband.engine import _fft  # noqa: E402
from locband.engine._grid import frequency_squared  # noqa: E402
from locband.engine.denoise import denoise  # noqa: E402
from locband.engine.denoise_params import DenoiseParams  # noqa: E402
from locband.engine.fsc import fsc, shell_index  # noqa: E402
from locband.engine.local import local_filter  # noqa: E402
from locband.engine.metrics import real_space_correlation, shell_scaled_correlation  # noqa: E402
from locband.engine.synthetic import synthetic_pair  # noqa: E402
from locband.engine.units import ANGSTROM3_PER_DALTON  # noqa: E402
from locband.engine.wiener import global_wiener_filter  # noqa: E402
from locband.io import write_map  # noqa: E402

PIXEL = 1.0  # Å/voxel of the synthetic maps

CASES = [
    ("rigid + flexible domain", dict(kind="rigid_flexible", noise_std=1.0, rigid_fraction=0.35)),
    ("low SNR", dict(kind="uniform", noise_std=3.0)),
    ("micelle-like shell", dict(kind="micelle", noise_std=1.0)),
    ("coloured noise", dict(kind="rigid_flexible", noise_std=1.0, rigid_fraction=0.35, noise_slope=8.0)),
    ("partial occupancy (0.4)", dict(kind="partial", noise_std=1.0, occupancy=0.4)),
]

VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("denoise", {}),
    ("  + molecular mass", {"mass": True}),
    ("  2 cycles", {"cycles": 2}),
    ("  no sharpening", {"sharpen": "off"}),
    ("  linear weights", {"significance": False}),
    ("  no positivity", {"positivity": False}),
    ("  no solvent flattening", {"solvent_flattening": False}),
    ("  no connectivity", {"connectivity": False}),
    ("  no half consistency", {"consistency": False}),
]


def _mass_kda(pair: Any) -> float:
    """The synthetic particle's volume (its sphere) as a protein mass at 1.23 Å^3/Da."""
    return float(pair.mask.sum()) * PIXEL ** 3 / ANGSTROM3_PER_DALTON / 1000.0


def _run_denoise(pair: Any, opts: dict[str, Any], workers: int) -> Any:
    opts = dict(opts)
    mass = _mass_kda(pair) if opts.pop("mass", False) else None
    params = replace(DenoiseParams(), **opts)
    return denoise(pair.half1, pair.half2, pixel_size_angstrom=PIXEL, mask=pair.mask, molecular_mass_kda=mass,
                   params=params, workers=workers)


def _row(vol: np.ndarray, pair: Any) -> dict[str, Any]:
    regions = {"mask": pair.mask, **{k: v.astype(np.float32) for k, v in pair.regions.items()}}
    out: dict[str, Any] = {"cc": {}, "scc": {}}
    for name, w in regions.items():
        out["cc"][name] = real_space_correlation(vol, pair.truth, weights=w)
        out["scc"][name] = shell_scaled_correlation(vol, pair.truth, weights=w)
    curve = fsc(vol, pair.truth)
    out["fsc05"] = PIXEL / curve.crossing(0.5)
    out["fsc0143"] = PIXEL / curve.crossing(0.143)
    inside = pair.mask > 0.5
    out["solvent"] = float(np.sqrt(np.mean(vol[pair.mask < 0.01] ** 2)) / np.sqrt(np.mean(vol[inside] ** 2)))
    return out


def _cross_bias(processed: np.ndarray, raw_other: np.ndarray, truth: np.ndarray, raw_fsc: Any) -> float:
    """Mean over shells with raw FSC > 0.143 of FSC(processed, raw other) minus its expectation.

    With the other half's noise independent of the processed half, FSC(P1, H2) =
    FSC(P1, T) * FSC(T, H2) per shell; what is left is the coupling through the statistics.
    """
    meas = fsc(processed, raw_other).fsc
    expect = fsc(processed, truth).fsc * fsc(truth, raw_other).fsc
    sel = (raw_fsc.fsc > 0.143) & (raw_fsc.frequency > 0)
    return float(np.mean(meas[sel] - expect[sel]))


def bench_quality(box: int, workers: int) -> None:
    print(f"\nquality against the truth, {box}^3, 1 Å/voxel (CC | sCC = after a per-shell scale fitted to the "
          "truth; FSC with the truth over the whole box, Å; solvent = RMS outside / RMS inside the particle)")
    summary: list[tuple[str, float, float, float, float, float, float]] = []
    for title, kw in CASES:
        pair = synthetic_pair((box,) * 3, seed=2, **kw)
        names = list(pair.regions)
        rows: list[tuple[str, dict[str, Any]]] = [("raw average", _row((pair.half1 + pair.half2) / 2, pair))]
        glob, _, _ = global_wiener_filter(pair.half1, pair.half2, mask=pair.mask, workers=workers)
        rows.append(("global FSC filter", _row(glob, pair)))
        lin = local_filter(pair.half1, pair.half2, pixel_size_angstrom=PIXEL, mask=pair.mask, workers=workers)
        rows.append(("locband filter", _row(lin.full, pair)))
        dn = None
        for label, opts in VARIANTS:
            res = _run_denoise(pair, opts, workers)
            rows.append((label, _row(res.full, pair)))
            if label == "denoise":
                dn = res
        head = "  ".join(f"{'CC ' + n[:7]:>10}" for n in ["mask", *names]) + "  " + \
            "  ".join(f"{'sCC ' + n[:6]:>10}" for n in ["mask", *names])
        print(f"\n{title}   (mass for '+ molecular mass': {_mass_kda(pair):.1f} kDa)")
        print(f"  {'map':<24}{head}  {'FSC0.5':>7} {'FSC0.143':>8} {'solvent':>8}")
        for label, r in rows:
            cells = "  ".join(f"{r['cc'][n]:>10.3f}" for n in ["mask", *names]) + "  " + \
                "  ".join(f"{r['scc'][n]:>10.3f}" for n in ["mask", *names])
            print(f"  {label:<24}{cells}  {r['fsc05']:>7.2f} {r['fsc0143']:>8.2f} {r['solvent']:>8.3f}", flush=True)
        lr = dict(rows)["locband filter"]
        dr = dict(rows)["denoise"]
        summary.append((title, dr["scc"]["mask"] - lr["scc"]["mask"], min(dr["scc"][n] - lr["scc"][n] for n in names),
                        lr["fsc05"], dr["fsc05"], lr["fsc0143"], dr["fsc0143"]))
        assert dn is not None
        raw_fsc = fsc(pair.half1, pair.half2)
        b_lin = _cross_bias(lin.half1, pair.half2, pair.truth, raw_fsc)
        b_dn = _cross_bias(dn.half1, pair.half2, pair.truth, raw_fsc)
        gain_cv = float(np.mean((np.asarray(dn.cross_unmasked[0].fsc) - np.asarray(dn.cross_linear_unmasked[0].fsc))
                                [(raw_fsc.fsc > 0.143) & (raw_fsc.frequency > 0)]))
        print(f"  cross-validation (processed half 1 vs raw half 2, mean over shells with raw FSC > 0.143): "
              f"denoise - linear {gain_cv:+.4f}; bias through the shared statistics: linear {b_lin:+.4f}, "
              f"denoise {b_dn:+.4f}")
    print("\nsummary, denoise - locband filter (sCC over the whole particle; worst region; FSC with the truth, Å):")
    for title, d_mask, d_worst, l05, d05, l0143, d0143 in summary:
        print(f"  {title:<26} sCC {d_mask:+.4f} (worst region {d_worst:+.4f})   FSC0.5 {l05:.2f} -> {d05:.2f}   "
              f"FSC0.143 {l0143:.2f} -> {d0143:.2f}")


def _shell_noise(shape: tuple[int, ...]) -> np.ndarray:
    """Standard deviation of the FSC of two independent random maps, per shell (1/sqrt(n))."""
    idx, n = shell_index(shape)
    counts = np.bincount(idx.ravel(), minlength=n + 1)[:n].astype(float)
    return 1.0 / np.sqrt(np.maximum(counts, 1.0))


def probe_cutoff(box: int, cut: float, workers: int) -> None:
    pair = synthetic_pair((box,) * 3, kind="uniform", noise_std=1.0, seed=2)
    rng = np.random.default_rng(7)
    shape = pair.truth.shape
    above = np.sqrt(frequency_squared(shape, tuple(1.0 / n for n in shape))) > cut
    t = _fft.rfftn(pair.truth, backend="scipy")

    def fake() -> np.ndarray:
        phases = np.exp(2j * np.pi * rng.random(t.shape)).astype(np.complex64)
        return _fft.irfftn(np.where(above, t * phases, 0).astype(np.complex64), shape, backend="scipy")

    low = _fft.irfftn(np.where(above, 0, t).astype(np.complex64), shape, backend="scipy")
    h1 = low + fake() + (pair.half1 - pair.truth)
    h2 = low + fake() + (pair.half2 - pair.truth)
    lin = local_filter(h1, h2, pixel_size_angstrom=PIXEL, mask=pair.mask, workers=workers).full
    dn = denoise(h1, h2, pixel_size_angstrom=PIXEL, mask=pair.mask, workers=workers).full
    noise = _shell_noise(shape)
    print(f"  (a) cut at {cut:.3f} cycles/voxel ({PIXEL / cut:.2f} Å): FSC with the truth above the cut "
          f"(mean / largest in units of the shell's noise SD 1/sqrt(n)), power above the cut")
    powers = {}
    for name, vol in (("locband filter", lin), ("denoise", dn)):
        curve = fsc(vol, pair.truth)
        sel = curve.frequency > cut + 1.0 / box
        z = curve.fsc[sel] / noise[sel]
        spec = _fft.rfftn(vol, backend="scipy")
        powers[name] = float(np.sum(np.abs(spec[above]) ** 2))
        print(f"      {name:<15} FSC mean {curve.fsc[sel].mean():+.4f} (z mean {z.mean():+.2f}, largest {z.max():+.2f})"
              f"   power above {powers[name]:.3e}")
    print(f"      power above the cut, denoise / locband filter: {powers['denoise'] / powers['locband filter']:.3f}")


def probe_noise(box: int, workers: int) -> None:
    rng = np.random.default_rng(11)
    h1 = rng.standard_normal((box,) * 3).astype(np.float32)
    h2 = rng.standard_normal((box,) * 3).astype(np.float32)
    raw = (h1 + h2) / 2
    sd = float(raw.std())
    lin = local_filter(h1, h2, pixel_size_angstrom=PIXEL, workers=workers).full
    dn = denoise(h1, h2, pixel_size_angstrom=PIXEL, workers=workers).full
    print("  (b) two independent pure-noise halves (no mask): output RMS / raw average RMS, largest |value| in raw "
          "noise SDs, blobs above the raw noise's 3-sigma contour")
    for name, vol in (("locband filter", lin), ("denoise", dn)):
        blobs = ndimage.label(vol > 3 * sd)[1]
        print(f"      {name:<15} RMS ratio {float(np.sqrt(np.mean(vol ** 2))) / sd:.4f}   largest "
              f"{float(np.abs(vol).max()) / sd:.3f} SD   blobs {blobs}")


def _blob(shape: tuple[int, ...], centre: tuple[float, ...], sigma: float) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    r2 = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
    return np.exp(-r2 / np.float32(2 * sigma ** 2)).astype(np.float32)


def probe_blob(box: int, workers: int) -> None:
    pair = synthetic_pair((box,) * 3, kind="uniform", noise_std=1.0, seed=2)
    c = box / 2
    spots = {"solvent": (c, c, c + 0.8 * c), "inside the particle": (c, c + 0.3 * c, c)}
    print("  (c) a blob (Gaussian, sigma 2 voxels, peak 3 noise SDs) in half 2 only, and a control blob in both "
          "halves elsewhere: fraction of the blob's amplitude in each output (regression on the blob's profile; "
          "no mask: a user's mask flattens anything outside it, real or not)")
    for where, centre in spots.items():
        other = (c, c - 0.3 * c, c) if where != "solvent" else (c, c, c - 0.8 * c)
        one = 3.0 * _blob(pair.truth.shape, centre, 2.0)
        both = 3.0 * _blob(pair.truth.shape, other, 2.0)
        h1 = pair.half1 + both
        h2 = pair.half2 + both + one
        lin = local_filter(h1, h2, pixel_size_angstrom=PIXEL, workers=workers)
        dn = denoise(h1, h2, pixel_size_angstrom=PIXEL, workers=workers)

        def frac(vol: np.ndarray, profile: np.ndarray, base: np.ndarray) -> float:
            # the part of the output that the blob added: regress (output - output without blob) on it
            sel = profile > 0.05 * profile.max()
            return float(np.sum((vol - base)[sel] * profile[sel]) / np.sum(profile[sel] ** 2))

        lin0 = local_filter(pair.half1 + both, pair.half2 + both, pixel_size_angstrom=PIXEL, workers=workers)
        dn0 = denoise(pair.half1 + both, pair.half2 + both, pixel_size_angstrom=PIXEL, workers=workers)
        ctrl_lin0 = local_filter(pair.half1, pair.half2, pixel_size_angstrom=PIXEL, workers=workers)
        ctrl_dn0 = denoise(pair.half1, pair.half2, pixel_size_angstrom=PIXEL, workers=workers)
        print(f"      blob {where}: one half -> full: linear {frac(lin.full, one, lin0.full):+.3f}, denoise "
              f"{frac(dn.full, one, dn0.full):+.3f}; processed half 1: denoise {frac(dn.half1, one, dn0.half1):+.3f}; "
              f"control in both halves -> full: linear {frac(lin0.full, both, ctrl_lin0.full):+.3f}, denoise "
              f"{frac(dn0.full, both, ctrl_dn0.full):+.3f}")


_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    sys.path.insert(0, {plugin!r})
    from locband.cli import main
    t0 = time.perf_counter()
    rc = main({argv!r})
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/status") as fh:
        peak_mb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024
    print(json.dumps({{"rc": rc, "wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "peak_mb": peak_mb}}))
""")


def bench_cost(size: int, threads: int, workdir: Path, repeats: int = 2) -> None:
    pair = synthetic_pair((size,) * 3, kind="rigid_flexible", noise_std=1.0, seed=1)
    paths = {}
    for name, vol in (("h1", pair.half1), ("h2", pair.half2), ("mask", pair.mask)):
        paths[name] = workdir / f"{name}_{size}.mrc"
        write_map(paths[name], vol, pixel_size_angstrom=PIXEL)
    del pair
    runs: dict[str, list[dict[str, float]]] = {"filter": [], "denoise": []}
    for _ in range(repeats):  # alternating, so that both see the same machine load
        for cmd in ("filter", "denoise"):
            out = workdir / f"out_{cmd}_{size}"
            argv = [cmd, str(paths["h1"]), str(paths["h2"]), "--mask", str(paths["mask"]), "--out-dir", str(out),
                    "--threads", str(threads), "--quiet"]
            code = _CHILD.format(plugin=str(ROOT / "plugin"), argv=argv)
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            r = json.loads(res.stdout.strip().splitlines()[-1])
            r["engine"] = json.loads((out / "summary.json").read_text())["timings_seconds"]["total"]
            runs[cmd].append(r)
    # the least disturbed run of each (smallest CPU time) stands for it
    results = {cmd: min(rs, key=lambda r: r["cpu"]) for cmd, rs in runs.items()}
    f, d = results["filter"], results["denoise"]
    print(f"\ncost at {size}^3, {threads} threads, each command in a fresh process with the report, {repeats} runs "
          "each alternating, the one with the least CPU time shown (CPU s = user + system time, the fair measure on a "
          "shared machine; peak = the process's VmHWM)")
    print(f"  {'command':<16} {'wall s':>7} {'CPU s':>7} {'engine s':>9} {'peak MiB':>9}")
    for name, r in (("locband filter", f), ("locband denoise", d)):
        print(f"  {name:<16} {r['wall']:>7.2f} {r['cpu']:>7.1f} {r['engine']:>9.2f} {r['peak_mb']:>9.0f}")
    ok = d["cpu"] <= 3 * f["cpu"] and d["wall"] <= 3 * f["wall"] and d["peak_mb"] <= 1536
    print(f"  denoise / filter: CPU {d['cpu'] / f['cpu']:.2f}x, wall {d['wall'] / f['wall']:.2f}x; targets "
          f"(256^3): CPU and wall <= 3x filter, peak <= 1536 MiB: {'OK' if ok else 'MISSED'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--box", type=int, default=96, help="box of the quality cases and probes (default 96)")
    ap.add_argument("--cost-size", type=int, default=256, help="box of the cost line (default 256)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-cost", action="store_true", help="skip the cost line")
    ap.add_argument("--cost-repeats", type=int, default=2, help="runs of each command for the cost line (default 2)")
    ap.add_argument("--no-quality", action="store_true", help="skip the quality table")
    ap.add_argument("--no-probes", action="store_true", help="skip the hallucination probes")
    args = ap.parse_args()
    print(f"locband denoise benchmark: {os.cpu_count()} CPUs here, {args.threads} threads")
    if not args.no_quality:
        bench_quality(args.box, args.threads)
    if not args.no_probes:
        print(f"\nno-hallucination probes, {args.box}^3")
        for cut in (0.25, 0.28):
            probe_cutoff(args.box, cut, args.threads)
        probe_noise(args.box, args.threads)
        probe_blob(args.box, args.threads)
    if not args.no_cost:
        with tempfile.TemporaryDirectory() as tmp:
            bench_cost(args.cost_size, args.threads, Path(tmp), args.cost_repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
