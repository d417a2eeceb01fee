"""`locband denoise`: files written, labels, summary, report, exit codes and error messages."""

import hashlib
import json
import os
import re

import mrcfile
import numpy as np
import pytest

from locband.cli import main
from locband.engine.synthetic import synthetic_pair
from locband.interpretation import DenoiseJob, denoise_files
from locband.output_names import DENOISE as OUTPUT_NAMES
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


def test_denoise_writes_every_output_labelled_for_interpretation(maps, tmp_path):
    before = _digest(maps)
    out = tmp_path / "out"
    rc = main(["denoise", str(maps / "h1.mrc"), str(maps / "h2.mrc"), "--mask", str(maps / "mask.mrc"),
               "--out-dir", str(out), "--quiet", "--molecular-mass-kda", "30"])
    assert rc == 0
    assert _digest(maps) == before  # inputs untouched
    names = set(os.listdir(out))
    assert set(OUTPUT_NAMES.values()) | {"report.png", "report.pdf"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    for key in ("full", "half1", "half2"):
        with mrcfile.open(out / OUTPUT_NAMES[key]) as m:
            labels = " ".join(m.get_labels())
            assert "FOR INTERPRETATION, NOT FOR AVERAGING" in labels
            assert m.voxel_size.x == pytest.approx(PX, rel=1e-5)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == "denoise" and "never average it again" in summary["use"]
    cv = summary["cross_validation"]
    for which in ("unmasked", "masked"):
        assert set(cv[which]) == {"half1_vs_raw_half2", "half2_vs_raw_half1", "linear_half1_vs_raw_half2",
                                  "linear_half2_vs_raw_half1"}
        assert len(cv[which]["half1_vs_raw_half2"]["fsc"]) == len(summary["fsc"][which]["fsc"])
    assert summary["settings"]["physical"]["molecular_mass_kda"] == 30.0
    # 30 kDa at 1.23 Å^3/Da in voxels of 1.4 Å: the volume the envelope was sized to
    assert summary["settings"]["molecular_volume_voxels"] == pytest.approx(30000 * 1.23 / PX ** 3)
    assert summary["envelope_volume_angstrom3"] > 0
    assert summary["fsc_0143_angstrom"]["masked"] >= 2 * PX
    pdf = (out / "report.pdf").read_bytes()
    assert pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") == 2


@pytest.mark.parametrize("argv,key,value", [
    ([], "sharpen", "local"),
    (["--no-sharpen"], "sharpen", "off"),
    (["--bfactor", "-40"], "sharpen", "global"),
    (["--bfactor", "-40"], "bfactor_voxels", -40 / PX ** 2),
    (["--no-positivity"], "positivity", False),
    (["--no-solvent-flattening"], "solvent_flattening", False),
    (["--no-connectivity"], "connectivity", False),
    (["--linear-weights"], "significance", False),
    (["--no-consistency"], "consistency", False),
    (["--cycles", "2"], "cycles", 2),
    (["--sharpen-from", "7"], "sharpen_from", PX / 7),
])
def test_every_option_reaches_the_settings(maps, tmp_path, argv, key, value):
    out = tmp_path / "o"
    rc = main(["denoise", str(maps / "h1.mrc"), str(maps / "h2.mrc"), "--out-dir", str(out), "--quiet",
               "--no-report", *argv])
    assert rc == 0
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert settings[key] == (pytest.approx(value) if isinstance(value, float) else value)


@pytest.mark.parametrize("case,message", [
    ("shape", r"half-maps differ in shape: .*h1\.mrc is \(32, 32, 32\) \(z, y, x\) but .*h2\.mrc is \(32, 32, 30\)"),
    ("voxel", r"half-maps differ in voxel size: .*h1\.mrc says 1\.4000 Å, .*h2\.mrc says 1\.5000 Å"),
    ("constant", r"half-map 2 '.*h2\.mrc' is constant"),
    ("mask_zero", r"mask '.*mask\.mrc' is all zero"),
    ("missing", r"half-map 2 '.*h2\.mrc' does not exist"),
])
def test_bad_input_gives_the_same_one_line_messages_as_filter(maps, tmp_path, capsys, case, message):
    h2, mask = maps / "h2.mrc", maps / "mask.mrc"
    data = read_map(h2).data
    if case == "shape":
        write_map(h2, data[..., :30], pixel_size_angstrom=PX)
    elif case == "voxel":
        write_map(h2, data, pixel_size_angstrom=1.5)
    elif case == "constant":
        write_map(h2, np.full_like(data, 2.5), pixel_size_angstrom=PX)
    elif case == "mask_zero":
        write_map(mask, np.zeros_like(data), pixel_size_angstrom=PX)
    elif case == "missing":
        h2.unlink()
    before = _digest(maps)
    out = tmp_path / "out"
    for command in ("filter", "denoise"):
        rc = main([command, str(maps / "h1.mrc"), str(h2), "--mask", str(mask), "--out-dir", str(out), "--quiet"])
        assert rc == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"locband {command}: error: ") and "Traceback" not in err
        assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert _digest(maps) == before
    assert not out.exists() or os.listdir(out) == []


@pytest.mark.parametrize("argv,message", [
    (["--molecular-mass-kda", "-3"], "--molecular-mass-kda must be > 0, got -3.0"),
    (["--pixel-size", "0"], "--pixel-size must be > 0 Å, got 0.0"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--cycles", "0"], "DenoiseParams.cycles must be an integer in [1, 10], got 0"),
    (["--band-ratio", "0.5"], "FilterParams.band_ratio must be a number in (1, 4], got 0.5"),
])
def test_bad_options_exit_1(maps, tmp_path, capsys, argv, message):
    rc = main(["denoise", str(maps / "h1.mrc"), str(maps / "h2.mrc"), "--out-dir", str(tmp_path / "o"), "--quiet",
               *argv])
    assert rc == 1
    assert message in capsys.readouterr().err


def test_sharpening_choices_are_exclusive(maps):
    with pytest.raises(SystemExit) as exc:
        main(["denoise", str(maps / "h1.mrc"), str(maps / "h2.mrc"), "--no-sharpen", "--bfactor", "-50"])
    assert exc.value.code == 2


def test_one_line_for_a_host(maps, tmp_path):
    summary = denoise_files(DenoiseJob(maps / "h1.mrc", maps / "h2.mrc", out_dir=tmp_path / "h", report=False))
    assert summary["outputs"]["full"] == str(tmp_path / "h" / "denoised.mrc")
    assert summary["cross_validation"]["masked"] is None  # no mask, no masked curves
    full = read_map(tmp_path / "h" / "denoised.mrc")
    assert full.data.shape == (32, 32, 32) and full.pixel_size_angstrom == pytest.approx(PX, rel=1e-5)


def test_report_draws_the_cross_validation_curves(maps, tmp_path):
    from locband.report import render_report

    summary = denoise_files(DenoiseJob(maps / "h1.mrc", maps / "h2.mrc", out_dir=tmp_path / "r",
                                       mask=maps / "mask.mrc", report=False))
    vol = read_map(tmp_path / "r" / "denoised.mrc").data
    fig = render_report(summary=summary, raw=None, filtered=vol, local_resolution=vol, mask=None)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    # the raw FSC (unmasked, masked) and the two cross-validation curves (masked: a mask was given)
    assert "denoised half vs raw other half (masked)" in labels
    assert "linear filter half vs raw other half (masked)" in labels
    assert any(label.startswith("masked:") for label in labels)
    titles = [ax.get_title() for ax in fig.axes]
    assert "denoised, xy (central z)" in titles  # the map is called what it is
