"""``locband cryosparc filter`` and ``loop`` with the unmodified cryosparc-tools 5.x client.

The client talks HTTP to the loopback stand-in in ``tests/cryosparc_server.py`` (127.0.0.1,
free port, stops by itself), which serves the OpenAPI schema the client builds its API from.
Tests check every call the adapter makes, the output slots, failure marking and the loop's resume.
"""

from __future__ import annotations

import importlib.util
import json
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
from locband.engine.synthetic import synthetic_pair
from locband.options import DenoiseSettings

_spec = importlib.util.spec_from_file_location("cryosparc_server", Path(__file__).resolve().parents[1] / "cryosparc_server.py")
assert _spec is not None and _spec.loader is not None
server = importlib.util.module_from_spec(_spec)
sys.modules["cryosparc_server"] = server
_spec.loader.exec_module(server)

PSIZE = 1.5
SHAPE = (32, 32, 32)
FILTER = ["cryosparc", "filter", "--project", "P1", "--workspace", "W1", "--quiet"]
LOG_CALLS = {"jobs.add_event_log", "jobs.update_event_log"}
CONNECT_CALLS = ["login", "users.me", "config.get_version"]


@pytest.fixture
def pair() -> Any:
    return synthetic_pair(SHAPE, noise_std=0.5, seed=6)


def _start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pair: Any, *, visible: bool = True,
           **kwargs: Any) -> Any:
    srv = server.FakeCryosparc(tmp_path / "P1", visible=visible, time_limit=60, **kwargs).start()
    srv.add_refinement("J1", pair.half1, pair.half2, psize=PSIZE, resolution=4.0, mask=pair.mask)
    for var in ("CRYOSPARC_MASTER_HOSTNAME", "CRYOSPARC_BASE_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CRYOSPARC_BASE_URL", srv.url)
    monkeypatch.setenv("CRYOSPARC_EMAIL", server.EMAIL)
    monkeypatch.setenv("CRYOSPARC_PASSWORD", server.PASSWORD)
    return srv


@pytest.fixture
def srv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pair: Any) -> Any:
    s = _start(tmp_path, monkeypatch, pair)
    yield s
    s.stop()


def _read(p: Path) -> np.ndarray:
    with mrcfile.open(p) as m:
        return np.array(m.data)


def _listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _no_logs(calls: list) -> list[str]:
    return [c[0] for c in calls if c[0] not in LOG_CALLS]


@pytest.mark.parametrize("visible", [True, False], ids=["project-folder-visible", "download"])
def test_filter_job_calls_outputs_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pair: Any,
                                            visible: bool, capsys: pytest.CaptureFixture[str]) -> None:
    s = _start(tmp_path, monkeypatch, pair, visible=visible)
    try:
        code = main(FILTER + ["--job", "J1"])
        err = capsys.readouterr().err
        assert code == 0, err
        downloads = ["projects.download_file"] * 3 if not visible else []
        assert _no_logs(s.calls) == CONNECT_CALLS + [
            "projects.find_one", "jobs.find_one", "jobs.load_output", "projects.get_directory", *downloads,
            "jobs.create", "jobs.find_one", "jobs.add_external_input", "jobs.connect", "jobs.add_external_output",
            "jobs.mark_running", *["projects.upload_file"] * 5, "jobs.get_output_fields", "jobs.save_output",
            "jobs.mark_completed"]
        calls = {c[0]: c for c in s.calls}
        assert calls["jobs.load_output"][2]["slots"] == ["map_half_A", "map_half_B", "mask_fsc"]
        assert calls["jobs.create"][2]["type"] == "snowflake"
        assert calls["jobs.connect"][2] == {"source_job_uid": "J1", "source_output_name": "volume"}
        assert [x["name"] for x in calls["jobs.add_external_input"][3]["slots"]] == ["map_half_A", "map_half_B", "mask_fsc"]
        ext = s.jobs["J2"]
        assert ext["status"] == "completed"
        out = ext["spec"]["outputs"]["filtered_volume"]
        assert out["type"] == "volume"
        source_dtypes = {r["name"]: r["dtype"] for r in s.jobs["J1"]["spec"]["outputs"]["volume"]["results"]}
        assert out["slots"] == [{"name": n, "dtype": source_dtypes.get(n, source_dtypes["map"])}
                                for n in ("map", "map_half_A", "map_half_B", "map_locres")]
        assert calls["jobs.save_output"][2]["version"] == "0"
        d: Dataset = s.data[("J2", "filtered_volume")]
        ref = local_filter(pair.half1, pair.half2, pixel_size_angstrom=PSIZE, mask=pair.mask)
        for slot, arr in (("map", ref.full), ("map_half_A", ref.half1), ("map_half_B", ref.half2),
                          ("map_locres", ref.local_resolution_angstrom)):
            rel = d[f"{slot}/path"][0]
            assert rel == f"J2/J2_locband_{slot}.mrc"  # inside the External job's own folder
            assert tuple(d[f"{slot}/shape"][0]) == SHAPE and d[f"{slot}/psize_A"][0] == pytest.approx(PSIZE)
            # the same float32 arrays after an exact MRC round trip through the upload
            np.testing.assert_array_equal(_read(s.project_dir / rel), arr)
        assert (s.project_dir / "J2/J2_locband_summary.json").is_file()
        texts = [e["text"] for e in s.events["J2"]]
        assert texts[0].startswith("locband") and "100% done" in texts[1] and "saved" in texts[-1]
        assert [c[0] for c in s.calls].count("jobs.update_event_log") >= 1  # one live progress line
    finally:
        s.stop()


def test_filter_job_with_the_interpretation_map(srv: Any, pair: Any, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """--interpretation: a second output, denoised_volume, beside the unchanged filtered_volume."""
    from locband.io import read_map

    code = main(FILTER + ["--job", "J1", "--interpretation", "--molecular-mass-kda", "30", "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    calls = _no_logs(srv.calls)
    assert calls[calls.index("jobs.create"):] == [
        "jobs.create", "jobs.find_one", "jobs.add_external_input", "jobs.connect", "jobs.add_external_output",
        "jobs.add_external_output", "jobs.mark_running", *["projects.upload_file"] * 9, "jobs.get_output_fields",
        "jobs.save_output", "jobs.get_output_fields", "jobs.save_output", "jobs.mark_completed"]
    outputs = srv.jobs["J2"]["spec"]["outputs"]
    assert list(outputs) == ["filtered_volume", "denoised_volume"]
    assert "never a refinement reference" in outputs["denoised_volume"]["title"]
    source_map = next(r["dtype"] for r in srv.jobs["J1"]["spec"]["outputs"]["volume"]["results"] if r["name"] == "map")
    assert outputs["denoised_volume"]["slots"] == [{"name": n, "dtype": source_map}
                                                   for n in ("map", "map_crossval_A", "map_crossval_B")]
    # the filtered volume is the linear filter's, as without --interpretation
    ref = local_filter(pair.half1, pair.half2, pixel_size_angstrom=PSIZE, mask=pair.mask)
    filtered = srv.data[("J2", "filtered_volume")]
    np.testing.assert_array_equal(_read(srv.project_dir / filtered["map/path"][0]), ref.full)
    # the interpretation map is `locband denoise`'s on the same files
    d: Dataset = srv.data[("J2", "denoised_volume")]
    files = {"map": "J2/J2_locband_denoised_map.mrc", "map_crossval_A": "J2/J2_locband_denoised_map_crossval_A.mrc",
             "map_crossval_B": "J2/J2_locband_denoised_map_crossval_B.mrc"}
    assert {slot: d[f"{slot}/path"][0] for slot in files} == files
    job_dir = srv.project_dir / "J1"
    assert main(["denoise", str(job_dir / "J1_008_volume_map_half_A.mrc"), str(job_dir / "J1_008_volume_map_half_B.mrc"),
                 "--mask", str(job_dir / "J1_008_volume_mask_fsc.mrc"), "--molecular-mass-kda", "30", "--threads", "1",
                 "--out-dir", str(tmp_path / "alone"), "--quiet", "--no-report"]) == 0
    for slot, name in (("map", "denoised.mrc"), ("map_crossval_A", "denoised_half1.mrc"),
                       ("map_crossval_B", "denoised_half2.mrc")):
        np.testing.assert_array_equal(_read(srv.project_dir / files[slot]), read_map(tmp_path / "alone" / name).data)
    with mrcfile.open(srv.project_dir / files["map"]) as m:
        assert "FOR INTERPRETATION, NOT FOR AVERAGING" in " ".join(m.get_labels())
    summary = json.loads((srv.project_dir / "J2/J2_locband_denoised_summary.json").read_text())
    assert summary["command"] == "denoise" and summary["inputs"]["half1"] == "P1/J1/J1_008_volume_map_half_A.mrc"
    assert any("interpretation map saved as output 'denoised_volume'" in e["text"] for e in srv.events["J2"])


def test_failure_after_creation_marks_the_job_failed(srv: Any, capsys: pytest.CaptureFixture[str]) -> None:
    srv.fail_uploads = True
    code = main(FILTER + ["--job", "J1"])
    err = capsys.readouterr().err
    assert code == 1 and "insufficient storage" in err
    assert srv.jobs["J2"]["status"] == "failed"
    assert "insufficient storage" in srv.errors["J2"]  # the reason reaches the job
    names = [c[0] for c in srv.calls]
    assert "jobs.save_output" not in names and "jobs.mark_completed" not in names
    assert ("J2", "filtered_volume") not in srv.data


def _bad_halves(s: Any, pair: Any) -> None:
    s.add_refinement("J5", pair.half1, pair.half2, psize=PSIZE, resolution=4.0, slots=("map",))


def _bad_psize(s: Any, pair: Any) -> None:
    s.add_refinement("J5", pair.half1, pair.half2, psize=PSIZE, resolution=4.0, psize_b=1.6)


def _bad_output_type(s: Any, pair: Any) -> None:
    s.add_refinement("J5", pair.half1, pair.half2, psize=PSIZE, resolution=4.0)


BAD = {
    "missing_job": (None, ["--job", "J99"], "job J99 in project P1 does not exist"),
    "missing_project": (None, ["--job", "J1", "--project", "P7"], "project P7 does not exist"),
    "missing_output": (None, ["--job", "J1", "--output", "volume_class_0"], "has no output 'volume_class_0'"),
    "not_a_volume": (_bad_output_type, ["--job", "J5", "--output", "particles"], "expected 'volume'"),
    "no_half_maps": (_bad_halves, ["--job", "J5"], "has no half maps"),
    "pixel_sizes_disagree": (_bad_psize, ["--job", "J5"], "pixel sizes disagree"),
    "bad_mask_slot": (None, ["--job", "J1", "--mask-slot", "mask_nope"], "--mask-slot 'mask_nope'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_1_and_creates_nothing(srv: Any, pair: Any, case: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    prepare, argv, message = BAD[case]
    if prepare is not None:
        prepare(srv, pair)
    before = _listing(srv.project_dir)
    jobs_before = set(srv.jobs)
    code = main(FILTER + argv)
    err = capsys.readouterr().err
    assert code == 1
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "jobs.create" not in [c[0] for c in srv.calls]
    assert set(srv.jobs) == jobs_before and _listing(srv.project_dir) == before


def test_credentials_come_from_the_environment(srv: Any, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CRYOSPARC_PASSWORD", "wrong")
    assert main(FILTER + ["--job", "J1"]) == 1
    err = capsys.readouterr().err
    assert "cannot connect to cryoSPARC" in err and "CRYOSPARC_PASSWORD" in err
    monkeypatch.delenv("CRYOSPARC_BASE_URL")
    assert main(FILTER + ["--job", "J1"]) == 1
    assert "CRYOSPARC_BASE_URL" in capsys.readouterr().err
    # there is no option for a password: argparse rejects it (usage error, exit 2)
    with pytest.raises(SystemExit) as exc:
        main(FILTER + ["--job", "J1", "--password", "x"])
    assert exc.value.code == 2
    capsys.readouterr()
    assert "jobs.create" not in [c[0] for c in srv.calls]


def test_host_and_port_variables_work(srv: Any, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CRYOSPARC_BASE_URL")
    monkeypatch.setenv("CRYOSPARC_MASTER_HOSTNAME", "127.0.0.1")
    monkeypatch.setenv("CRYOSPARC_BASE_PORT", srv.url.rsplit(":", 1)[1])
    assert main(FILTER + ["--job", "J1"]) == 0, capsys.readouterr().err
    assert srv.jobs["J2"]["status"] == "completed"


# -- loop -----------------------------------------------------------------------------------
LOOP = ["cryosparc", "loop", "--project", "P1", "--workspace", "W1", "--job", "J1", "--quiet", "--poll-seconds", "0.01"]


def _loop(tmp_path: Path, *extra: str) -> int:
    return main(LOOP + ["--state", str(tmp_path / "state.json"), *extra])


def test_loop_until_resolution_stops_improving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pair: Any,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    s = _start(tmp_path, monkeypatch, pair, refine_resolutions=[3.6, 3.5, 3.48])
    try:
        code = _loop(tmp_path, "--max-rounds", "5", "--min-improvement", "0.05", "--refine-param", "refine_res_init=6",
                     "--lane", "gpu")
        assert code == 0, capsys.readouterr().err
        state = json.loads((tmp_path / "state.json").read_text())
        assert state["finished"] and "stopped improving" in state["stop_reason"]
        assert [r["resolution_angstrom"] for r in state["rounds"]] == [4.0, 3.6, 3.5, 3.48]
        # J1 refinement; then per round an External filter job and a local refinement
        assert [(r.get("filter_job"), r["refine_job"]) for r in state["rounds"]] == [
            (None, "J1"), ("J2", "J3"), ("J4", "J5"), ("J6", "J7")]
        creates = [c for c in s.calls if c[0] == "jobs.create"]
        assert [c[2]["type"] for c in creates] == ["snowflake", "new_local_refine"] * 3
        assert all(c[3] == {"refine_res_init": 6} for c in creates if c[2]["type"] == "new_local_refine")
        assert [c[2].get("lane") for c in s.calls if c[0] == "jobs.enqueue"] == ["gpu"] * 3
        conns = [(c[1]["job_uid"], c[1]["target_input"], c[2]["source_job_uid"], c[2]["source_output_name"])
                 for c in s.calls if c[0] == "jobs.connect" and c[1]["target_input"] != "input_volume"]
        assert conns == [("J3", "particles", "J1", "particles"), ("J3", "volume", "J2", "filtered_volume"),
                         ("J5", "particles", "J3", "particles"), ("J5", "volume", "J4", "filtered_volume"),
                         ("J7", "particles", "J5", "particles"), ("J7", "volume", "J6", "filtered_volume")]
        # each filter job read the previous refinement's output
        assert [c[1]["job_uid"] for c in s.calls if c[0] == "jobs.load_output"] == ["J1", "J3", "J5"]
        n_calls = len(s.calls)
        assert _loop(tmp_path) == 0  # a finished loop is not run again
        assert [c[0] for c in s.calls[n_calls:]] == CONNECT_CALLS
    finally:
        s.stop()


def test_loop_seeds_refinements_with_the_linear_map_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         pair: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Even a loop request that asks for the interpretation map seeds every refinement with filtered_volume,
    whose map is the linear filter's; the command line does not offer it at all."""
    s = _start(tmp_path, monkeypatch, pair, refine_resolutions=[3.6])
    try:
        with pytest.raises(SystemExit) as exc:
            _loop(tmp_path, "--interpretation")
        assert exc.value.code == 2
        capsys.readouterr()
        first = cj.FilterRequest(project="P1", workspace="W1", job="J1", interpretation=DenoiseSettings())
        cs = cj.connect()
        try:
            state = cj.run_loop(cs, cj.LoopRequest(filter=first, max_rounds=1, poll_seconds=0.01),
                                tmp_path / "state.json")
        finally:
            cj.disconnect(cs)
        assert state["rounds"][1]["filter_job"] == "J2"
        assert "denoised_volume" in s.jobs["J2"]["spec"]["outputs"]  # the interpretation map was made ...
        volume = [(c[2]["source_job_uid"], c[2]["source_output_name"]) for c in s.calls
                  if c[0] == "jobs.connect" and c[1]["target_input"] == "volume"]
        assert volume == [("J2", "filtered_volume")]  # ... but the refinement was seeded with the filtered volume
        ref = local_filter(pair.half1, pair.half2, pixel_size_angstrom=PSIZE, mask=pair.mask)
        seeded = s.data[("J2", "filtered_volume")]["map/path"][0]
        np.testing.assert_array_equal(_read(s.project_dir / seeded), ref.full)  # the linear filter's map
    finally:
        s.stop()


def test_loop_max_rounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pair: Any,
                         capsys: pytest.CaptureFixture[str]) -> None:
    s = _start(tmp_path, monkeypatch, pair, refine_resolutions=[3.0, 2.5])
    try:
        assert _loop(tmp_path, "--max-rounds", "1") == 0, capsys.readouterr().err
        state = json.loads((tmp_path / "state.json").read_text())
        assert len(state["rounds"]) == 2 and state["stop_reason"] == "reached the maximum of 1 rounds"
    finally:
        s.stop()


def test_loop_resumes_after_an_interruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pair: Any,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    s = _start(tmp_path, monkeypatch, pair, refine_resolutions=[3.6, 3.7], polls_to_finish=10**6)
    try:
        # the first run gives up while the round-1 refinement is still running
        assert _loop(tmp_path, "--max-rounds", "3", "--timeout", "0.05") == 1
        assert "run the same command again" in capsys.readouterr().err
        state = json.loads((tmp_path / "state.json").read_text())
        assert state["current"] == {"round": 1, "filter_job": "J2", "refine_job": "J3"} and not state["finished"]
        creates_before = [c[2]["type"] for c in s.calls if c[0] == "jobs.create"]
        assert creates_before == ["snowflake", "new_local_refine"]
        s.polls_to_finish = 2
        s._pending["J3"] = 1  # the refinement finishes at the next status check
        assert _loop(tmp_path, "--max-rounds", "3") == 0, capsys.readouterr().err
        state = json.loads((tmp_path / "state.json").read_text())
        assert [(r.get("filter_job"), r["refine_job"]) for r in state["rounds"]] == [
            (None, "J1"), ("J2", "J3"), ("J4", "J5")]
        creates = [c[2]["type"] for c in s.calls if c[0] == "jobs.create"]
        assert creates == ["snowflake", "new_local_refine"] * 2  # round 1 was not created again
        assert [c[1]["job_uid"] for c in s.calls if c[0] == "jobs.enqueue"] == ["J3", "J5"]
        assert "stopped improving" in state["stop_reason"]  # 3.7 Å is worse than 3.6 Å
    finally:
        s.stop()


def test_loop_failed_refinement_and_foreign_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pair: Any,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    s = _start(tmp_path, monkeypatch, pair, refine_resolutions=[3.6])
    s.fail_refines = {1}
    try:
        assert _loop(tmp_path) == 1
        assert "J3 ended with status 'failed'" in capsys.readouterr().err
        code = main(LOOP[:-2] + ["--job", "J2", "--state", str(tmp_path / "state.json")])
        assert code == 1 and "belongs to another loop" in capsys.readouterr().err
        assert main(LOOP + ["--max-rounds", "0"]) == 1
        assert "--max-rounds must be >= 1" in capsys.readouterr().err
        assert main(LOOP + ["--refine-param", "novalue"]) == 1
        assert "KEY=VALUE" in capsys.readouterr().err
    finally:
        s.stop()


@pytest.mark.parametrize(("res", "rounds", "minimum", "stop"), [
    ([4.0], 3, 0.05, None),
    ([4.0, 3.5], 3, 0.05, None),
    ([4.0, 3.98], 3, 0.05, "stopped improving"),
    ([4.0, 3.5, 3.6], 3, 0.05, "stopped improving"),
    ([4.0, 3.5, 3.4, 3.3], 3, 0.05, "maximum of 3"),
    ([4.0, 3.9], 1, 0.0, "maximum of 1"),
])
def test_loop_decision(res: list[float], rounds: int, minimum: float, stop: str | None) -> None:
    got = cj.loop_decision(res, max_rounds=rounds, min_improvement_angstrom=minimum)
    assert (got is None) if stop is None else (stop in got)


def test_openapi_schema_builds_the_real_client(srv: Any) -> None:
    from cryosparc.api import APIClient

    api = APIClient(f"{srv.url}/api/cmd", auth=server.TOKEN)
    for _, _, summary, _, _, _ in server.ENDPOINTS:
        ns, _, name = summary.rpartition(".")
        assert callable(getattr(getattr(api, ns) if ns else api, name)), summary


def test_engine_warnings_reach_the_job_log(srv: Any, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    from locband.adapters.cryosparc import online

    real = online.filter_maps

    def warning_filter(*args: Any, **kwargs: Any) -> Any:
        warnings.warn("half-maps look over-sharpened", RuntimeWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(online, "filter_maps", warning_filter)
    cs = cj.connect()
    try:
        with pytest.warns(RuntimeWarning, match="over-sharpened"):
            assert cj.run_filter_job(cs, cj.FilterRequest(project="P1", workspace="W1", job="J1"))["external_job"] == "J2"
    finally:
        cj.disconnect(cs)
    warned = [e for e in srv.events["J2"] if e["type"] == "warning"]
    assert [e["text"] for e in warned] == ["locband: half-maps look over-sharpened"]


def test_client_4x_is_refused_with_what_it_needs(srv: Any, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import cryosparc

    monkeypatch.setattr(cryosparc, "__version__", "4.7.1")
    assert main(FILTER + ["--job", "J1"]) == 1
    err = capsys.readouterr().err
    assert "cryosparc-tools 4.7.1" in err and "5.x" in err and "offline" in err
    assert srv.calls == []


def test_loop_queues_a_starting_refinement_that_is_still_building(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pair: Any, capsys: pytest.CaptureFixture[str]) -> None:
    s = _start(tmp_path, monkeypatch, pair, refine_resolutions=[3.9])
    s.jobs["J1"]["status"] = "building"
    try:
        assert _loop(tmp_path, "--max-rounds", "1") == 0, capsys.readouterr().err
        assert [c[1]["job_uid"] for c in s.calls if c[0] == "jobs.enqueue"] == ["J1", "J3"]
        state = json.loads((tmp_path / "state.json").read_text())
        assert [r["resolution_angstrom"] for r in state["rounds"]] == [4.0, 3.9]
    finally:
        s.stop()


def test_failed_job_setup_marks_the_job_failed(srv: Any, capsys: pytest.CaptureFixture[str]) -> None:
    srv.fail_on = {"jobs.add_external_output"}
    assert main(FILTER + ["--job", "J1"]) == 1
    assert "injected failure in jobs.add_external_output" in capsys.readouterr().err
    assert srv.jobs["J2"]["status"] == "failed"
    assert srv.errors["J2"].startswith("locband could not set up the job")
    assert "jobs.mark_running" not in [c[0] for c in srv.calls]


def test_summary_names_project_paths(srv: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(FILTER + ["--job", "J1"]) == 0
    summary = json.loads((srv.project_dir / "J2/J2_locband_summary.json").read_text())
    assert summary["inputs"] == {"half1": "P1/J1/J1_008_volume_map_half_A.mrc",
                                 "half2": "P1/J1/J1_008_volume_map_half_B.mrc",
                                 "mask": "P1/J1/J1_008_volume_mask_fsc.mrc"}
