"""`locband filter` end to end: an offset or a common scale of both half-maps changes no reported number.

Issue 8, items 5 and 10. Every number in summary.json (FSC curves, FSC resolutions, local
resolution percentiles, bands, settings) and every voxel of local_resolution.mrc and
band_snr.mrc must stay the same; the filtered maps carry the offset (the solvent level passes
through) or scale exactly as the inputs do.
"""

import json
import os

import mrcfile
import numpy as np
import pytest

from locband.cli import main
from locband.engine.synthetic import synthetic_pair
from locband.io import write_map

PX = 1.4
# the tolerances of tests/engine/test_invariance.py, for the same reasons (float32 rounding of
# X + 10 and X * 1e12 is ~1e-6 of these maps' spread; the defects moved numbers by 1e-2 to 1)
NUM_TOL = 1e-5  # FSC values, settings, band centres, percentiles relative
FREQ_TOL = 1e-3  # cycles/voxel, for resolutions in Å: relative FREQ_TOL / frequency
MAP_TOL = 5e-5  # of the map's largest value
SKIP = {"inputs", "outputs", "timings_seconds", "locband_version", "run_id"}  # run_id: unique per run


@pytest.fixture(scope="module")
def pair():
    return synthetic_pair((32, 32, 32), noise_std=0.7, seed=11)


def _run(folder, h1, h2, mask):
    folder.mkdir()
    for name, vol in (("h1", h1), ("h2", h2), ("mask", mask)):
        write_map(folder / f"{name}.mrc", vol, pixel_size_angstrom=PX)
    out = folder / "out"
    rc = main(["filter", str(folder / "h1.mrc"), str(folder / "h2.mrc"), "--mask", str(folder / "mask.mrc"),
               "--out-dir", str(out), "--quiet", "--no-report", "--band-snr"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    maps = {name: mrcfile.read(out / name) for name in os.listdir(out) if name.endswith(".mrc")}
    return summary, maps


def _compare(got, ref, path=""):
    """Every number of two summaries, recursively (resolutions in Å compared as frequencies)."""
    if isinstance(ref, dict):
        assert set(got) == set(ref), path
        for k in ref:
            if k not in SKIP:
                _compare(got[k], ref[k], f"{path}.{k}")
    elif isinstance(ref, list):
        assert len(got) == len(ref), path
        for i, (g, r) in enumerate(zip(got, ref, strict=True)):
            _compare(g, r, f"{path}[{i}]")
    elif isinstance(ref, float) and "angstrom" in path and "pixel_size" not in path:
        assert PX / got == pytest.approx(PX / ref, abs=FREQ_TOL), path
    elif isinstance(ref, float):
        assert got == pytest.approx(ref, rel=NUM_TOL, abs=NUM_TOL), path
    else:
        assert got == ref, path


@pytest.fixture(scope="module")
def reference(pair, tmp_path_factory):
    return _run(tmp_path_factory.mktemp("ref") / "run", pair.half1, pair.half2, pair.mask)


# offsets stay within ~10x the maps' spread: storing X + 250 in float32 already rounds X by 1e-5
# of its spread, enough to move the local resolution of a voxel where the local FSC touches
# 0.143 twice by a whole band (measured once in 32^3 at -250): that is rounding of the input,
# not the offset
@pytest.mark.parametrize("offset,scale", [(10.0, 1.0), (-3.5, 1.0), (0.0, 1e12), (0.0, 1e-12), (3.0, 1e-9)])
def test_offset_and_scale_change_no_reported_number(pair, reference, tmp_path, offset, scale):
    ref_summary, ref_maps = reference
    h1 = pair.half1 * np.float32(scale) + np.float32(offset * scale)
    h2 = pair.half2 * np.float32(scale) + np.float32(offset * scale)
    summary, maps = _run(tmp_path / "run", h1, h2, pair.mask)
    assert summary["fsc"]["masked"] is not None
    _compare(summary, ref_summary)
    # local resolution is a frequency divided into the voxel size: compare as frequencies
    np.testing.assert_allclose(PX / maps["local_resolution.mrc"], PX / ref_maps["local_resolution.mrc"],
                               atol=FREQ_TOL)
    np.testing.assert_allclose(maps["band_snr.mrc"], ref_maps["band_snr.mrc"], rtol=1e-3, atol=1e-5)
    for name in ("filtered.mrc", "filtered_half1.mrc", "filtered_half2.mrc"):
        expected = (ref_maps[name].astype(np.float64) + offset) * scale
        assert np.abs(maps[name] - expected).max() <= MAP_TOL * np.abs(expected).max(), name
