"""``locband cryosparc offline`` on a job folder laid out as cryoSPARC lays it out.

Every ``.cs`` file here is written with cryosparc-tools' real ``Dataset`` class; no mocks.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pytest
from cryosparc.dataset import Dataset

from locband import local_filter
from locband.adapters import cryosparc as cj
from locband.cli import main
from locband.commands import cryosparc as cmd
from locband.engine.synthetic import synthetic_pair
from locband.io import cs as csio

PSIZE = 1.5
SHAPE = (32, 32, 32)
TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "cryosparc"


def _mrc(path: Path, data: np.ndarray, psize: float = PSIZE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.asarray(data, np.float32))
        m.voxel_size = psize


def _volume_cs(path: Path, slots: dict[str, tuple[str, tuple[int, ...], float]]) -> None:
    spec: list = []
    for s in slots:
        spec += [(f"{s}/path", "O"), (f"{s}/shape", "<u4", (3,)), (f"{s}/psize_A", "<f4")]
    d = Dataset.allocate(1, spec)
    for s, (p, shape, psize) in slots.items():
        d[f"{s}/path"] = [p]
        d[f"{s}/shape"] = [list(shape)]
        d[f"{s}/psize_A"] = [psize]
    d.save(str(path))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """P1/J42: a finished refinement (iterations 5 and 8) with maps, masks, precision and particles."""
    proj = tmp_path / "P1"
    job = proj / "J42"
    pair = synthetic_pair(SHAPE, noise_std=0.5, seed=2)
    vols = {"map": (pair.half1 + pair.half2) / 2, "map_sharp": pair.half1 + pair.half2, "map_half_A": pair.half1,
            "map_half_B": pair.half2, "mask_refine": pair.mask, "mask_fsc": pair.mask, "mask_fsc_auto": pair.mask}
    slots = {}
    for name, vol in vols.items():
        rel = f"J42/J42_008_volume_{name}.mrc"
        _mrc(proj / rel, vol)
        slots[name] = (rel, SHAPE, PSIZE)
    _mrc(proj / "J42/J42_008_volume_precision.mrc", np.ones((32, 32, 17), np.float32))
    slots["precision"] = ("J42/J42_008_volume_precision.mrc", (32, 32, 17), PSIZE)
    _volume_cs(job / "J42_008_volume.cs", slots)
    # an older iteration whose files are gone: the newest one must be chosen
    _volume_cs(job / "J42_005_volume.cs", {s: (f"J42/J42_005_volume_{s}.mrc", SHAPE, PSIZE) for s in
                                            ("map", "map_half_A", "map_half_B")})
    parts = Dataset.allocate(6, [("alignments3D/split", "<u4"), ("alignments3D/pose", "<f4", (3,))])
    parts["alignments3D/split"] = [0, 1, 0, 1, 0, 1]
    parts.save(str(job / "J42_008_particles.cs"))
    (job / "job.json").write_text(json.dumps({"uid": "J42", "job_type": "homo_refine_new"}))
    (job / "job.log").write_text("")
    return proj


def _listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["cryosparc", "offline", *argv, "--quiet"])
    return code, capsys.readouterr().err


def test_job_folder_to_importable_outputs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = project / "locband_J42"
    code, err = _run(capsys, str(project / "J42"), "--out-dir", str(out))
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    assert names == {"filtered.mrc", "filtered_half1.mrc", "filtered_half2.mrc", "local_resolution.mrc",
                     "summary.json", "locband_volume.cs", "locband_volume.csg", "locband_manifest.json"}
    d = Dataset.load(str(out / "locband_volume.cs"))
    assert len(d) == 1
    assert set(d.prefixes()) >= {"map", "map_half_A", "map_half_B", "map_locres"}
    expected_files = {"map": "filtered.mrc", "map_half_A": "filtered_half1.mrc", "map_half_B": "filtered_half2.mrc",
                      "map_locres": "local_resolution.mrc"}
    for slot, name in expected_files.items():
        assert d[f"{slot}/path"][0] == f"locband_J42/{name}"  # relative to the project, as cryoSPARC stores paths
        assert (project / d[f"{slot}/path"][0]).is_file()
        assert tuple(d[f"{slot}/shape"][0]) == SHAPE
        assert d[f"{slot}/psize_A"][0] == pytest.approx(PSIZE)  # stored as float32
    assert np.load(out / "locband_volume.cs").shape == (1,)  # NUMPY format: readable without cryosparc-tools
    csg = (out / "locband_volume.csg").read_text()
    assert "metafile: '>locband_volume.cs'" in csg and "type: volume.blob" in csg

    # the maps are those of the engine on the newest iteration's halves and mask
    def read(p: Path) -> np.ndarray:
        with mrcfile.open(p) as m:
            return np.array(m.data)

    ref = local_filter(read(project / "J42/J42_008_volume_map_half_A.mrc"),
                       read(project / "J42/J42_008_volume_map_half_B.mrc"), pixel_size_angstrom=PSIZE,
                       mask=read(project / "J42/J42_008_volume_mask_fsc.mrc"))
    # float32 files of the same float32 arrays: only MRC round trip, which is exact
    np.testing.assert_array_equal(read(out / "filtered_half1.mrc"), ref.half1)
    np.testing.assert_array_equal(read(out / "local_resolution.mrc"), ref.local_resolution_angstrom)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cryosparc"]["mask_slot"] == "mask_fsc"
    assert summary["cryosparc"]["source"].endswith("J42_008_volume.cs")


def test_interpretation_map_and_its_own_dataset(project: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--interpretation: the filter's outputs as without it, plus the interpretation map and its dataset."""
    out, plain, alone = project / "locband_J42", tmp_path / "plain", tmp_path / "alone"
    code, err = _run(capsys, str(project / "J42"), "--out-dir", str(out), "--interpretation", "--molecular-mass-kda",
                     "30", "--threads", "1")
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    assert names == {"filtered.mrc", "filtered_half1.mrc", "filtered_half2.mrc", "local_resolution.mrc",
                     "summary.json", "locband_volume.cs", "locband_volume.csg", "denoised.mrc", "denoised_half1.mrc",
                     "denoised_half2.mrc", "denoised_summary.json", "locband_denoised_volume.cs",
                     "locband_denoised_volume.csg", "locband_manifest.json"}
    d = Dataset.load(str(out / "locband_denoised_volume.cs"))
    files = {"map": "denoised.mrc", "map_crossval_A": "denoised_half1.mrc", "map_crossval_B": "denoised_half2.mrc"}
    assert set(d.prefixes()) == set(files)
    for slot, name in files.items():
        assert d[f"{slot}/path"][0] == f"locband_J42/{name}" and tuple(d[f"{slot}/shape"][0]) == SHAPE
    csg = (out / "locband_denoised_volume.csg").read_text()
    assert "metafile: '>locband_denoised_volume.cs'" in csg and "denoised_volume" in csg
    # the volume that seeds refinements is the linear filter's, exactly as without --interpretation
    assert Dataset.load(str(out / "locband_volume.cs"))["map/path"][0] == "locband_J42/filtered.mrc"
    assert _run(capsys, str(project / "J42"), "--out-dir", str(plain), "--threads", "1")[0] == 0

    def read(p: Path) -> np.ndarray:
        with mrcfile.open(p) as m:
            return np.array(m.data)

    np.testing.assert_array_equal(read(out / "filtered.mrc"), read(plain / "filtered.mrc"))
    # the interpretation map is `locband denoise`'s on the same files (same code path, same threads)
    assert main(["denoise", str(project / "J42/J42_008_volume_map_half_A.mrc"),
                 str(project / "J42/J42_008_volume_map_half_B.mrc"), "--mask",
                 str(project / "J42/J42_008_volume_mask_fsc.mrc"), "--molecular-mass-kda", "30", "--threads", "1",
                 "--out-dir", str(alone), "--quiet", "--no-report"]) == 0
    for name in ("denoised.mrc", "denoised_half1.mrc", "denoised_half2.mrc"):
        np.testing.assert_array_equal(read(out / name), read(alone / name))
    with mrcfile.open(out / "denoised.mrc") as m:
        assert "FOR INTERPRETATION, NOT FOR AVERAGING" in " ".join(m.get_labels())
    summary = json.loads((out / "summary.json").read_text())
    denoised = json.loads((out / "denoised_summary.json").read_text())
    assert summary["run_id"] == denoised["run_id"] and denoised["command"] == "denoise"
    assert summary["cryosparc"]["volume_cs_denoised"] == str(out / "locband_denoised_volume.cs")
    # again without it: the interpretation map and its dataset are removed with the old set
    assert _run(capsys, str(project / "J42"), "--out-dir", str(out))[0] == 0
    assert not (out / "denoised.mrc").exists() and not (out / "locband_denoised_volume.cs").exists()


def test_interpretation_settings_need_the_switch(project: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, str(project / "J42"), "--out-dir", str(tmp_path / "o"), "--no-positivity")
    assert code == 1 and "--no-positivity is a setting of the interpretation map, which is off" in err
    assert not (tmp_path / "o").exists()


def test_cs_file_as_source_and_folder_outside_project(project: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "elsewhere"
    code, err = _run(capsys, str(project / "J42" / "J42_008_volume.cs"), "--out-dir", str(out), "--mask-slot", "none")
    assert code == 0, err
    d = Dataset.load(str(out / "locband_volume.cs"))
    path = Path(d["map/path"][0])
    assert path.is_absolute() and path == (out / "filtered.mrc").resolve()
    assert json.loads((out / "summary.json").read_text())["cryosparc"]["mask_slot"] is None


def test_inputs_are_not_modified(project: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    before = _listing(project)
    code, _ = _run(capsys, str(project / "J42"), "--out-dir", str(tmp_path / "o"))
    assert code == 0
    assert _listing(project) == before


def _rewrite(project: Path, **changes: tuple[str, tuple[int, ...], float] | None) -> None:
    d = Dataset.load(str(project / "J42/J42_008_volume.cs"))
    slots = {s: (d[f"{s}/path"][0], tuple(d[f"{s}/shape"][0]), float(d[f"{s}/psize_A"][0])) for s in d.prefixes()}
    for k, v in changes.items():
        if v is None:
            slots.pop(k)
        else:
            slots[k] = v
    _volume_cs(project / "J42/J42_008_volume.cs", slots)


BAD = {
    "no_half_maps": (lambda p: _rewrite(p, map_half_A=None, map_half_B=None), "no half maps"),
    "psize_disagree_cs": (lambda p: _rewrite(p, map_half_B=("J42/J42_008_volume_map_half_B.mrc", SHAPE, 1.6)),
                          "pixel sizes disagree"),
    "psize_disagree_header": (lambda p: _mrc(p / "J42/J42_008_volume_map_half_B.mrc",
                                             np.random.default_rng(0).standard_normal(SHAPE), 1.7),
                              "differ in voxel size"),
    "header_vs_cs": (lambda p: _rewrite(p, map_half_A=("J42/J42_008_volume_map_half_A.mrc", SHAPE, 1.9),
                                        map_half_B=("J42/J42_008_volume_map_half_B.mrc", SHAPE, 1.9)),
                     "pixel sizes disagree"),
    "missing_file": (lambda p: (p / "J42/J42_008_volume_map_half_B.mrc").unlink(), "--project-dir"),
    "no_volume_cs": (lambda p: [f.unlink() for f in (p / "J42").glob("*_volume.cs")], "no volume output"),
    "shape_disagree": (lambda p: _rewrite(p, map_half_B=("J42/J42_008_volume_map_half_B.mrc", (32, 32, 30), PSIZE)),
                       "shape"),
    "not_a_cs": (lambda p: (p / "J42/J42_008_volume.cs").write_bytes(b"not a dataset"), "not a readable"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_1_and_writes_nothing(project: Path, tmp_path: Path, case: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    breaker, message = BAD[case]
    breaker(project)
    out = tmp_path / "out"
    code, err = _run(capsys, str(project / "J42"), "--out-dir", str(out))
    assert code == 1
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_missing_folder_and_bad_mask_slot(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, str(project / "J99"), "--out-dir", str(tmp_path / "o"))
    assert code == 1 and "J99" in err and "does not exist" in err
    code, err = _run(capsys, str(project / "J42"), "--out-dir", str(tmp_path / "o"), "--mask-slot", "mask_nope")
    assert code == 1 and "--mask-slot 'mask_nope'" in err


def test_missing_cryosparc_tools_names_the_extra(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "cryosparc.dataset", None)  # makes the import fail
    code, err = _run(capsys, str(project / "J42"), "--out-dir", str(tmp_path / "o"))
    assert code == 1
    assert "pip install 'locband[cryosparc]'" in err
    monkeypatch.setitem(sys.modules, "cryosparc", None)
    code = main(["cryosparc", "filter", "--project", "P1", "--workspace", "W1", "--job", "J1", "--quiet"])
    assert code == 1 and "pip install 'locband[cryosparc]'" in capsys.readouterr().err


def test_volume_cs_round_trip(tmp_path: Path) -> None:
    slots = {"map": csio.VolumeSlot("J7/a.mrc", (10, 12, 14), 0.83), "map_half_A": csio.VolumeSlot("/abs/b.mrc", (10, 12, 14), 0.83)}
    csio.write_volume_cs(tmp_path / "v.cs", slots, uid=77)
    rec = csio.read_volume_cs(tmp_path / "v.cs")
    assert rec.uid == 77 and set(rec.slots) == {"map", "map_half_A"}
    assert rec.slots["map_half_A"].path == "/abs/b.mrc" and rec.slots["map"].shape == (10, 12, 14)
    assert rec.slots["map"].pixel_size_angstrom == pytest.approx(0.83, rel=1e-6)  # float32 storage


@pytest.mark.parametrize(("available", "asked", "chosen"), [
    ({"mask_fsc", "mask_refine"}, "auto", "mask_fsc"), ({"mask_refine"}, "auto", "mask_refine"),
    (set(), "auto", None), ({"mask_fsc"}, "none", None), ({"mask_refine", "mask_fsc"}, "mask_refine", "mask_refine")])
def test_choose_mask_slot(available: set[str], asked: str, chosen: str | None) -> None:
    assert cj.choose_mask_slot(available, asked) == chosen


def test_output_slots_copy_source_dtypes() -> None:
    specs = cj.output_slot_specs({"map": "blob_v5", "map_half_A": "blob_h", "map_half_B": "blob_h"})
    assert specs == [{"name": "map", "dtype": "blob_v5"}, {"name": "map_half_A", "dtype": "blob_h"},
                     {"name": "map_half_B", "dtype": "blob_h"}, {"name": "map_locres", "dtype": "blob_v5"}]
    fields = cj.build_output_fields({"map": "J3/x.mrc"}, shape=(4, 5, 6), pixel_size_angstrom=1.25)
    assert fields == {"map/path": ["J3/x.mrc"], "map/shape": [[4, 5, 6]], "map/psize_A": [1.25]}


@pytest.mark.parametrize("template", ["filter_job.json", "loop.json"])
def test_template_params_map_to_cli_flags(template: str) -> None:
    import argparse

    spec = json.loads((TEMPLATES / template).read_text())
    sub = spec["command"][2]
    parser = argparse.ArgumentParser()
    cmd.add_args(parser)
    base = [sub, "--project", "P1", "--workspace", "W1", "--job", "J1"]
    for p in spec["params"]:
        value = {"int": "2", "float": "0.5", "str": "x", "bool": None}[p["type"]]
        argv = base + ([p["flag"]] if value is None else [p["flag"], p.get("example", value)])
        args = parser.parse_args(argv + ([p["with"]] if "with" in p else []))
        dest = p["name"]
        assert hasattr(args, dest), f"{template}: {p['flag']} is not an option of 'locband cryosparc {sub}'"
        if not p.get("required"):  # given, it changes what the default would be
            assert getattr(args, dest) != getattr(parser.parse_args(base), dest), f"{p['flag']} does not set {dest}"
        if "with" in p:  # a setting of the interpretation map: taken with the switch, refused without it
            assert cmd.filter_request(args).interpretation is not None
            with pytest.raises(ValueError, match=f"turn on {p['with']}"):
                cmd.filter_request(parser.parse_args(argv))
        if "default" in p:
            defaults = parser.parse_args(base)
            assert getattr(defaults, dest) == pytest.approx(p["default"]) if isinstance(p["default"], float) \
                else getattr(defaults, dest) == p["default"], p["flag"]
    if template == "filter_job.json":
        assert [i["name"] for i in spec["inputs"]] == [cj.INPUT_NAME]
        assert [o["name"] for o in spec["outputs"]] == [cj.OUTPUT_NAME, cj.DENOISED_OUTPUT_NAME]
        assert [s["name"] for s in spec["outputs"][0]["slots"]] == list(cj.OUTPUT_SLOTS)
        assert [s["name"] for s in spec["outputs"][1]["slots"]] == list(cj.DENOISED_SLOT_KINDS)


def _parse(*argv: str) -> Any:
    import argparse

    parser = argparse.ArgumentParser()
    cmd.add_args(parser)
    return parser.parse_args(list(argv))


BASE = ("--project", "P3", "--workspace", "W2", "--job", "J42")


@pytest.mark.parametrize(("argv", "attr", "expected"), [
    ((), "project", "P3"), ((), "workspace", "W2"), ((), "job", "J42"),
    (("--output", "volume_class_1"), "output", "volume_class_1"),
    (("--mask-slot", "mask_refine"), "mask_slot", "mask_refine"),
    (("--title", "my filter"), "title", "my filter"),
])
def test_filter_option_translation(argv: tuple[str, ...], attr: str, expected: Any) -> None:
    """cryoSPARC's own options (the engine's are in tests/test_options.py, for every host)."""
    req = cmd.filter_request(_parse("filter", *BASE, *argv))
    assert getattr(req, attr) == expected


@pytest.mark.parametrize(("argv", "attr", "expected"), [
    (("--refine-type", "nonuniform_refine_new"), "refine_type", "nonuniform_refine_new"),
    (("--refine-param", "refine_res_init=8", "--refine-param", "refine_symmetry=C2"), "refine_params",
     {"refine_res_init": 8, "refine_symmetry": "C2"}),
    (("--refine-param", "refine_do_marg=true"), "refine_params", {"refine_do_marg": True}),
    (("--max-rounds", "5"), "max_rounds", 5),
    (("--min-improvement", "0.2"), "min_improvement_angstrom", 0.2),
    (("--lane", "gpu"), "lane", "gpu"),
    (("--poll-seconds", "30"), "poll_seconds", 30.0),
    (("--timeout", "600"), "timeout_seconds", 600.0),
    (("--mask-slot", "none"), "filter.mask_slot", "none"),
])
def test_loop_option_translation(argv: tuple[str, ...], attr: str, expected: Any) -> None:
    req = cmd.loop_request(_parse("loop", *BASE, *argv))
    value = req
    for part in attr.split("."):
        value = getattr(value, part)
    assert value == expected


@pytest.mark.parametrize(("argv", "message"), [
    (("--max-rounds", "0"), "--max-rounds must be >= 1"), (("--poll-seconds", "0"), "--poll-seconds must be > 0"),
    (("--timeout", "-1"), "--timeout must be > 0"), (("--refine-type", " "), "--refine-type must name"),
    (("--refine-param", "=3"), "KEY=VALUE"), (("--threads", "0"), "--threads must be >= 1")])
def test_loop_option_errors(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        cmd.loop_request(_parse("loop", *BASE, *argv))
