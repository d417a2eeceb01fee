"""`locband filter` and `locband demo`: files written, exit codes and error messages."""

import hashlib
import json
import os

import mrcfile
import numpy as np
import pytest

from locband.cli import main
from locband.engine.synthetic import synthetic_pair
from locband.io import read_map, write_map

PX = 1.4


@pytest.fixture
def maps(tmp_path):
    pair = synthetic_pair((32, 32, 32), noise_std=0.7, seed=11)
    d = tmp_path / "in"
    d.mkdir()
    for name, vol in (("h1", pair.half1), ("h2", pair.half2), ("mask", pair.mask)):
        write_map(d / f"{name}.mrc", vol, pixel_size_angstrom=PX)
    return d


def _digest(folder):
    return {p: hashlib.sha256((folder / p).read_bytes()).hexdigest() for p in sorted(os.listdir(folder))}


def test_filter_writes_every_output_and_leaves_inputs_alone(maps, tmp_path):
    before = _digest(maps)
    out = tmp_path / "out"
    rc = main(["filter", str(maps / "h1.mrc"), str(maps / "h2.mrc"), "--mask", str(maps / "mask.mrc"),
               "--out-dir", str(out), "--quiet", "--band-snr", "--no-report"])
    assert rc == 0
    assert _digest(maps) == before
    names = set(os.listdir(out))
    assert {"filtered.mrc", "filtered_half1.mrc", "filtered_half2.mrc", "local_resolution.mrc", "band_snr.mrc",
            "summary.json"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    full = read_map(out / "filtered.mrc")
    assert full.data.shape == (32, 32, 32) and full.pixel_size_angstrom == pytest.approx(PX, rel=1e-5)
    locres = read_map(out / "local_resolution.mrc").data
    assert locres.min() >= 2 * PX - 1e-3  # Nyquist is the best possible resolution
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pixel_size_angstrom"] == pytest.approx(PX, rel=1e-5)
    assert summary["fsc"]["masked"] is not None and summary["n_bands"] == len(summary["bands"]["centres_cycles_per_voxel"])
    assert summary["fsc_0143_angstrom"]["masked"] >= 2 * PX
    with mrcfile.open(out / "band_snr.mrc") as m:
        assert m.is_volume_stack() and m.data.shape[0] == summary["n_bands"]
    for key in ("read", "bands", "total"):
        assert key in summary["timings_seconds"]


def test_pixel_size_override_and_zero_header(maps, tmp_path, capsys):
    with mrcfile.open(maps / "h1.mrc", mode="r+") as m:
        m.voxel_size = 0.0
    rc = main(["filter", str(maps / "h1.mrc"), str(maps / "h2.mrc"), "--out-dir", str(tmp_path / "o"), "--quiet"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "h1.mrc' has voxel size 0 in its header: give the voxel size with --pixel-size" in err
    assert not (tmp_path / "o" / "filtered.mrc").exists()
    rc = main(["filter", str(maps / "h1.mrc"), str(maps / "h2.mrc"), "--out-dir", str(tmp_path / "o"), "--quiet",
               "--pixel-size", "2.0", "--no-report"])
    assert rc == 0
    assert read_map(tmp_path / "o" / "filtered.mrc").pixel_size_angstrom == pytest.approx(2.0)


def _replace(path, data, voxel=PX):
    write_map(path, data, pixel_size_angstrom=voxel)


@pytest.mark.parametrize("case,message", [
    ("shape", r"half-maps differ in shape: .*h1\.mrc is \(32, 32, 32\) \(z, y, x\) but .*h2\.mrc is \(32, 32, 30\)"),
    ("voxel", r"half-maps differ in voxel size: .*h1\.mrc says 1\.4000 Å, .*h2\.mrc says 1\.5000 Å"),
    ("nan", r"half-map 2 '.*h2\.mrc' has 1 non-finite \(NaN or infinite\) voxels"),
    ("constant", r"half-map 2 '.*h2\.mrc' is constant"),
    ("mask_range", r"mask '.*mask\.mrc' must hold values in \[0, 1\], found min 0 and max 2"),
    ("mask_zero", r"mask '.*mask\.mrc' is all zero"),
    ("mask_shape", r"mask '.*mask\.mrc' has shape \(16, 16, 16\) but the half-maps are \(32, 32, 32\)"),
    ("missing", r"half-map 2 '.*h2\.mrc' does not exist"),
    ("mode", r"half-map 2 '.*h2\.mrc' has MRC mode 4"),
    ("truncated", r"half-map 2 '.*h2\.mrc' is (truncated|not a readable MRC file)"),
])
def test_bad_input_exits_1_with_a_message_naming_the_file(maps, tmp_path, capsys, case, message):
    h2, mask = maps / "h2.mrc", maps / "mask.mrc"
    data = read_map(h2).data
    if case == "shape":
        _replace(h2, data[..., :30])
    elif case == "voxel":
        _replace(h2, data, voxel=1.5)
    elif case == "nan":
        data[3, 4, 5] = np.nan
        _replace(h2, data)
    elif case == "constant":
        _replace(h2, np.full_like(data, 2.5))
    elif case == "mask_range":
        _replace(mask, np.where(read_map(mask).data > 0.5, 2.0, 0.0).astype(np.float32))
    elif case == "mask_zero":
        _replace(mask, np.zeros_like(data))
    elif case == "mask_shape":
        _replace(mask, np.ones((16, 16, 16), np.float32))
    elif case == "missing":
        h2.unlink()
    elif case == "mode":
        with mrcfile.new(h2, overwrite=True) as m:
            m.set_data(data.astype(np.complex64))
    elif case == "truncated":
        h2.write_bytes(h2.read_bytes()[:-4096])
    before = _digest(maps)
    out = tmp_path / "out"
    rc = main(["filter", str(maps / "h1.mrc"), str(h2), "--mask", str(mask), "--out-dir", str(out), "--quiet"])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("locband filter: error: ") and "Traceback" not in err
    assert len(err.splitlines()) == 1
    import re

    assert re.search(message, err), err
    assert _digest(maps) == before
    assert not out.exists() or os.listdir(out) == []


def test_unwritable_output_folder(maps, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    rc = main(["filter", str(maps / "h1.mrc"), str(maps / "h2.mrc"), "--out-dir", str(blocker / "sub"), "--quiet"])
    assert rc == 1
    assert f"output folder '{blocker / 'sub'}' cannot be created" in capsys.readouterr().err
    rc = main(["filter", str(maps / "h1.mrc"), str(maps / "h2.mrc"), "--out-dir", str(blocker), "--quiet"])
    assert rc == 1
    assert "exists but is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--pixel-size", "-1"], "--pixel-size must be > 0 Å, got -1.0"),
    (["--band-ratio", "0.5"], "FilterParams.band_ratio must be a number in (1, 4], got 0.5"),
])
def test_bad_options_exit_1(maps, tmp_path, capsys, argv, message):
    rc = main(["filter", str(maps / "h1.mrc"), str(maps / "h2.mrc"), "--out-dir", str(tmp_path / "o"), "--quiet", *argv])
    assert rc == 1
    assert message in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["filter"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["filter", "a.mrc", "b.mrc", "--no-such-option"])
    assert exc.value.code == 2


def test_progress_lines_go_to_a_log(maps, tmp_path, capsys):
    rc = main(["filter", str(maps / "h1.mrc"), str(maps / "h2.mrc"), "--out-dir", str(tmp_path / "o"), "--no-report"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "band 1/" in err and "100.0% done" in err and "\r" not in err  # not a terminal: plain lines


def test_demo_runs_and_reports_quality(tmp_path, capsys):
    from locband.engine.metrics import real_space_correlation

    rc = main(["demo", "--out-dir", str(tmp_path / "demo"), "--box", "32", "--quiet", "--no-report"])
    assert rc == 0
    demo = tmp_path / "demo"
    for name in ("demo_half1.mrc", "demo_half2.mrc", "demo_truth.mrc", "demo_mask.mrc", "filtered.mrc", "summary.json"):
        assert (demo / name).exists()
    # the table printed is the correlation with the truth of the maps written: recompute it from the
    # files (the regions are those of the same synthetic particle, seed 0)
    regions = synthetic_pair((32, 32, 32), kind="rigid_flexible", noise_std=1.0, seed=0).regions
    truth = read_map(demo / "demo_truth.mrc").data
    raw = (read_map(demo / "demo_half1.mrc").data + read_map(demo / "demo_half2.mrc").data) * np.float32(0.5)
    filtered = read_map(demo / "filtered.mrc").data
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()
            if line.strip().split(" ")[0] in regions}
    assert set(rows) == {"rigid", "flexible"}
    for region, mask in regions.items():
        cc_raw = real_space_correlation(raw, truth, weights=mask)
        cc_locband = real_space_correlation(filtered, truth, weights=mask)
        printed_raw, printed_locband = float(rows[region][1]), float(rows[region][3])
        assert printed_raw == pytest.approx(cc_raw, abs=5e-4)  # printed with 3 decimals
        assert printed_locband == pytest.approx(cc_locband, abs=5e-4)
        assert cc_locband > cc_raw + 0.1  # a noisy particle: the filter brings it much closer to the truth
