"""The PNG/PDF report: files written, what the panels show, and `locband report`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import locband.report
from locband import cli
from locband.engine.synthetic import synthetic_pair
from locband.io.mrc import read_map, write_map
from locband.pipeline import FilterJob, filter_files
from locband.report import render_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `filter` run (32^3, with a mask) whose inputs are still in place."""
    d = tmp_path_factory.mktemp("report")
    pair = synthetic_pair((32, 32, 32), noise_std=1.0, seed=5)
    for name, vol in (("h_half1.mrc", pair.half1), ("h_half2.mrc", pair.half2), ("mask.mrc", pair.mask)):
        write_map(d / name, vol, pixel_size_angstrom=1.5)
    filter_files(FilterJob(d / "h_half1.mrc", d / "h_half2.mrc", out_dir=d / "out", mask=d / "mask.mrc"))
    return d


def _pdf_pages(path: Path) -> int:
    data = path.read_bytes()
    return data.count(b"/Type /Page") - data.count(b"/Type /Pages")


def test_filter_writes_png_and_pdf(run_dir: Path) -> None:
    out = run_dir / "out"
    assert (out / "report.png").read_bytes()[:8] == PNG_MAGIC
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert _pdf_pages(out / "report.pdf") == 2  # the figure page and the settings page
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def _summary(mask: bool) -> dict[str, object]:
    f = np.linspace(0, 0.5, 17)
    curve = {"frequency_cycles_per_voxel": list(f), "fsc": list(np.clip(1.2 - 3 * f, -0.05, 1.0))}
    return {"pixel_size_angstrom": 2.0, "n_bands": 5, "locband_version": "test",
            "fsc": {"unmasked": curve, "masked": curve if mask else None},
            "fsc_0143_angstrom": {"unmasked": 5.0, "masked": 5.0 if mask else None},
            "fsc_05_angstrom": {"unmasked": 8.0, "masked": 8.0 if mask else None},
            "local_resolution_angstrom": {"p5": 5.0, "p50": 5.0, "p95": 50.0}}


def _volumes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shape = (16, 16, 16)
    mask = np.zeros(shape, np.float32)
    mask[4:12, 4:12, 4:12] = 1.0
    mask[2, 2, 2] = 0.5  # exactly 0.5 is outside ("mask > 0.5")
    local = np.where(mask > 0.5, 5.0, 50.0).astype(np.float32)
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32), local, mask


def test_histogram_counts_only_voxels_inside_the_mask() -> None:
    raw, local, mask = _volumes()
    fig = render_report(summary=_summary(True), raw=raw, filtered=raw, local_resolution=local, mask=mask)
    hist = fig.axes[1]
    heights = [p.get_height() for p in hist.patches]
    lefts = [p.get_x() for p in hist.patches]
    assert sum(heights) == 8 ** 3  # the 8^3 cube, not the 0.5 voxel and not the rest of the box
    assert max(lefts) < 50.0  # no bar reaches the 50 Å voxels outside the mask
    assert "mask > 0.5" in hist.get_title()


def test_histogram_without_mask_uses_whole_box() -> None:
    raw, local, _ = _volumes()
    fig = render_report(summary=_summary(False), raw=raw, filtered=raw, local_resolution=local, mask=None)
    assert sum(p.get_height() for p in fig.axes[1].patches) == 16 ** 3
    assert "whole box" in fig.axes[1].get_title()


def test_fsc_panel_marks_thresholds_and_both_curves() -> None:
    raw, local, mask = _volumes()
    fig = render_report(summary=_summary(True), raw=raw, filtered=raw, local_resolution=local, mask=mask)
    ax = fig.axes[0]
    flat = {round(float(line.get_ydata()[0]), 3) for line in ax.get_lines()
            if len(set(np.asarray(line.get_ydata(), float))) == 1}
    assert {0.143, 0.5} <= flat
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(s.startswith("unmasked: FSC=0.143 at 5.00 Å") for s in labels)
    assert any(s.startswith("masked: FSC=0.143 at 5.00 Å") for s in labels)
    # x axis in 1/Å up to Nyquist: 0.5 cycles/voxel at 2 Å/voxel
    assert ax.get_xlim()[1] == pytest.approx(0.25)


def test_slices_show_input_filtered_and_colour_local_resolution() -> None:
    raw, local, mask = _volumes()
    fig = render_report(summary=_summary(True), raw=raw, filtered=raw, local_resolution=local, mask=mask)
    titles = [a.get_title() for a in fig.axes]
    for what in ("input", "filtered", "local resolution"):
        assert sum(t.startswith(what) for t in titles) == 2  # xy and xz slices
    coloured = [im for a in fig.axes for im in a.get_images() if im.get_cmap().name == "turbo"]
    assert len(coloured) == 2


def test_report_without_input_maps_says_so(tmp_path: Path) -> None:
    raw, local, mask = _volumes()
    fig = render_report(summary=_summary(True), raw=None, filtered=raw, local_resolution=local, mask=mask)
    texts = [t.get_text() for a in fig.axes for t in a.texts]
    assert texts.count("input not available") == 2


PYPLOT_CHECK = """
import sys
from pathlib import Path
import numpy as np
from locband.io.mrc import write_map
from locband.io.outputs import OutputSet
from locband.pipeline import add_report

out, summary = Path(sys.argv[1]), __import__("json").loads(sys.argv[2])
vol = np.random.default_rng(0).standard_normal((16, 16, 16)).astype(np.float32)
outs = OutputSet(out)  # the report joins a complete output set
outs.add("filtered.mrc", lambda p: write_map(p, vol, pixel_size_angstrom=2.0))
outs.commit()
paths = add_report(out, summary=summary, raw=vol, filtered=vol, local_resolution=np.abs(vol) + 2, mask=None)
print(",".join(p.name for p in paths), "pyplot" in " ".join(sys.modules))
"""


def test_the_report_never_imports_pyplot(tmp_path: Path) -> None:
    # a fresh interpreter: nothing else has imported pyplot there, so the check always applies
    out = subprocess.run([sys.executable, "-c", PYPLOT_CHECK, str(tmp_path), json.dumps(_summary(True))],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["report.png,report.pdf", "False"]
    assert (tmp_path / "report.png").read_bytes()[:8] == PNG_MAGIC


def test_report_command_regenerates(run_dir: Path) -> None:
    out = run_dir / "out"
    for name in ("report.png", "report.pdf"):
        (out / name).unlink()
    assert cli.main(["report", str(out)]) == 0
    assert (out / "report.png").read_bytes()[:8] == PNG_MAGIC
    assert _pdf_pages(out / "report.pdf") == 2


def test_report_command_with_other_inputs(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = run_dir / "out"
    other = {"h_other1.mrc": 3.0, "h_other2.mrc": 5.0}  # constant maps: their mean is 4 everywhere
    for name, value in other.items():
        write_map(run_dir / name, np.full((32, 32, 32), value, np.float32), pixel_size_angstrom=1.5)
    box = np.zeros((32, 32, 32), np.float32)
    box[8:24, 8:24, 8:24] = 1.0
    write_map(run_dir / "box_mask.mrc", box, pixel_size_angstrom=1.5)
    drawn: dict[str, object] = {}
    render = locband.report.render_report

    def spy(**kwargs: object) -> object:
        drawn.update(kwargs)
        return render(**kwargs)

    monkeypatch.setattr(locband.report, "render_report", spy)
    manifest = json.loads((out / "locband_manifest.json").read_text())
    assert cli.main(["report", str(out), "--half1", str(run_dir / "h_other1.mrc"), "--half2",
                     str(run_dir / "h_other2.mrc"), "--mask", str(run_dir / "box_mask.mrc")]) == 0
    raw = drawn["raw"]  # the given halves' mean, as the central sections the report shows
    assert isinstance(raw, locband.report.CentralSlices)
    np.testing.assert_array_equal(raw.xy, np.full((32, 32), 4.0, np.float32))
    np.testing.assert_array_equal(raw.xz, np.full((32, 32), 4.0, np.float32))
    np.testing.assert_array_equal(drawn["mask"], box)  # the given mask, not the run's
    np.testing.assert_array_equal(drawn["filtered"], read_map(out / "filtered.mrc").data)
    # the redrawn report joined the run's set: same run id, the new files in its manifest
    again = json.loads((out / "locband_manifest.json").read_text())
    assert again["run_id"] == manifest["run_id"]
    assert again["files"]["report.png"]["size"] == (out / "report.png").stat().st_size
    assert again["files"]["filtered.mrc"] == manifest["files"]["filtered.mrc"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (lambda d: ["report", str(d / "missing")], "does not exist or is not a folder"),
        (lambda d: ["report", str(d)], "summary.json' does not exist"),
        (lambda d: ["report", str(d / "out"), "--half1", "a.mrc"], "give both --half1 and --half2"),
    ],
)
def test_report_command_errors(run_dir: Path, capsys: pytest.CaptureFixture[str], args, message: str) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(args(run_dir)) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_report_command_rejects_foreign_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "summary.json").write_text("[1, 2]")
    assert cli.main(["report", str(tmp_path)]) == 1
    assert "not a readable locband summary" in capsys.readouterr().err
    (tmp_path / "summary.json").write_text("{}")
    assert cli.main(["report", str(tmp_path)]) == 1
    assert "has no 'pixel_size_angstrom'" in capsys.readouterr().err
