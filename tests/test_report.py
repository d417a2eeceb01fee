"""The PNG/PDF report: files written, what the panels show, and `locband report`."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from locband import cli
from locband.engine.synthetic import synthetic_pair
from locband.io.mrc import write_map
from locband.pipeline import filter_files
from locband.report import render_report, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `filter` run (32^3, with a mask) whose inputs are still in place."""
    d = tmp_path_factory.mktemp("report")
    pair = synthetic_pair((32, 32, 32), noise_std=1.0, seed=5)
    for name, vol in (("h_half1.mrc", pair.half1), ("h_half2.mrc", pair.half2), ("mask.mrc", pair.mask)):
        write_map(d / name, vol, pixel_size_angstrom=1.5)
    filter_files(d / "h_half1.mrc", d / "h_half2.mrc", mask_path=d / "mask.mrc", out_dir=d / "out", report=True)
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


def test_write_report_does_not_touch_pyplot(tmp_path: Path) -> None:
    had_pyplot = "matplotlib.pyplot" in sys.modules
    from locband.io.outputs import OutputSet

    raw, local, mask = _volumes()
    outs = OutputSet(tmp_path)  # the report joins a complete output set
    outs.add("filtered.mrc", lambda p: write_map(p, raw, pixel_size_angstrom=2.0))
    outs.add("local_resolution.mrc", lambda p: write_map(p, local, pixel_size_angstrom=2.0))
    outs.commit()
    paths = write_report(tmp_path, summary=_summary(True), raw=raw, result=None, mask=mask)
    assert [p.name for p in paths] == ["report.png", "report.pdf"]
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules


def test_report_command_regenerates(run_dir: Path) -> None:
    out = run_dir / "out"
    for name in ("report.png", "report.pdf"):
        (out / name).unlink()
    assert cli.main(["report", str(out)]) == 0
    assert (out / "report.png").read_bytes()[:8] == PNG_MAGIC
    assert _pdf_pages(out / "report.pdf") == 2


def test_report_command_with_other_inputs(run_dir: Path) -> None:
    out = run_dir / "out"
    assert cli.main(["report", str(out), "--half1", str(run_dir / "h_half1.mrc"), "--half2",
                     str(run_dir / "h_half2.mrc"), "--mask", str(run_dir / "mask.mrc")]) == 0


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
