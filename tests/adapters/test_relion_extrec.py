"""The RELION --external_reconstruct adapter: request building, cases, outputs, logs, errors."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pytest
from extrec_job import random_field, write_job

from locband import cli
from locband.adapters import relion_extrec
from locband.engine.metrics import real_space_correlation
from locband.engine.reconstruct import reconstruct_from_sums
from locband.errors import InputFileError
from locband.io.mrc import write_map
from locband.io.relion_metadata import read_hook_context
from locband.io.relion_star import parse_hook_name, read_external_reconstruct_star, read_fourier_sums

JOB = Path("Refine3D/job012")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """relion_refine's working directory: STAR paths are relative to it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _map(path: str) -> np.ndarray:
    with mrcfile.open(path) as m:
        return np.array(m.data, dtype=np.float64)


def _plain_map(star: str) -> np.ndarray:
    s = read_external_reconstruct_star(star)
    d, w = read_fourier_sums(s)
    return reconstruct_from_sums(d, w, ori_size=s.ori_size, padding_factor=s.padding_factor,
                                 current_size=s.current_size, tau2=s.tau2, tau2_fudge=s.tau2_fudge)


def _request(star: str, **kw: Any) -> relion_extrec.ExtRecRequest:
    return relion_extrec.build_request(relion_extrec.HookOptions(star, **kw))


def _run_pair(stars: dict[int, str], **kw: Any) -> dict[int, Any]:
    """Both half calls at once, as relion_refine's ranks 1 and 2 make them (threads here)."""
    out: dict[int, Any] = {}

    def one(h: int) -> None:
        try:
            out[h] = relion_extrec.run(_request(stars[h], timeout_s=60, **kw),
                                       print_line=lambda s: None)
        except Exception as exc:  # reported to the test below
            out[h] = exc

    threads = [threading.Thread(target=one, args=(h,)) for h in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


# -- request ---------------------------------------------------------------------------------

def _model(job: Path, it: int, half: str, pixel: float) -> None:
    (job / f"run_it{it:03d}{half}_model.star").write_text(
        f"\ndata_model_general\n\n_rlnPixelSize {pixel}\n_rlnCurrentResolution 8.0\n")


def test_pixel_size_sources(project: Path) -> None:
    stars = write_job(JOB, pixel_size_angstrom=None)
    assert _request(stars[1]).pixel_size_source.startswith("unknown")
    _model(JOB, 1, "_half1", 1.7)
    req = _request(stars[1])
    assert (req.pixel_size_angstrom, req.pixel_size_source) == (1.7, "previous model.star")
    stars = write_job(JOB, pixel_size_angstrom=2.5)  # RELION 4.0/5.0 label wins over model.star
    assert _request(stars[1]).pixel_size_angstrom == 2.5
    assert _request(stars[1], pixel_size_angstrom=3.0).pixel_size_angstrom == 3.0


def test_mask_sources(project: Path) -> None:
    stars = write_job(JOB)
    assert _request(stars[1]).mask_path is None
    (JOB / "job.star").write_text("\ndata_joboptions_values\n\nloop_\n_rlnJobOptionVariable #1\n"
                                  "_rlnJobOptionValue #2\nfn_mask job_mask.mrc\nnr_threads 1\n")
    assert _request(stars[1]).mask_path == "job_mask.mrc"
    (JOB / "run_it001_optimiser.star").write_text("# RELION optimiser\n# --o run\n\ndata_optimiser_general\n\n"
                                                 "_rlnSolventMaskName opt_mask.mrc\n")
    assert _request(stars[1]).mask_path == "opt_mask.mrc"
    assert _request(stars[1], mask="mine.mrc").mask_path == "mine.mrc"


@pytest.mark.parametrize(("halves", "split", "case"), [((1,), True, "half"), ((0,), True, "final"),
                                                        ((0,), False, "single")])
def test_case(project: Path, halves: tuple[int, ...], split: bool, case: str) -> None:
    stars = write_job(JOB, halves=halves, split=split)
    assert _request(stars[halves[0]]).case == case


def test_sequential_detection(project: Path) -> None:
    """Only the calling relion_refine's own command line counts; the job's files are hints."""
    stars = write_job(JOB)
    name = parse_hook_name(stars[1])
    assert relion_extrec.detect_sequential(name, JOB, ancestors=[]) is None
    seen = relion_extrec.detect_sequential(
        name, JOB, ancestors=[(42, "relion_refine_mpi --o run --sequential_halves_recons --split_random_halves")])
    assert seen == "the command line of relion_refine (pid 42)"
    seen = relion_extrec.detect_sequential(  # a launcher script's interpreter first, the program second
        name, JOB, ancestors=[(7, "/bin/sh /opt/relion/bin/relion_refine_mpi --sequential_halves_recons")])
    assert seen == "the command line of relion_refine (pid 7)"
    assert relion_extrec.detect_sequential(  # another program's option of the same name is not RELION's
        name, JOB, ancestors=[(9, "bash myscript.sh --sequential_halves_recons")]) is None
    (JOB / "note.txt").write_text("++++ with the following command(s):\nrelion_refine_mpi --o x "
                                  "--sequential_halves_recons\n")
    assert relion_extrec.detect_sequential(name, JOB, ancestors=[]) is None
    assert read_hook_context(name, JOB).sequential_hint == str(JOB / "note.txt")
    (JOB / "run_it001_optimiser.star").write_text("# RELION optimiser; version 3.1.3\n# --o run "
                                                 "--sequential_halves_recons\n\ndata_optimiser_general\n\n")
    assert read_hook_context(name, JOB).sequential_hint == str(JOB / "run_it001_optimiser.star")
    # a call made by hand (no relion_refine above it) is never refused because of the job's files
    assert _request(stars[1]).sequential is None


@pytest.mark.parametrize(("argv", "match"), [(["--final", "both"], "invalid choice: 'both'"),
                                             (["--timeout", "0"], "--timeout must be > 0 seconds, got 0.0"),
                                             (["--pixel-size", "-1"], "--pixel-size must be > 0 Å, got -1.0")])
def test_bad_options(project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], match: str) -> None:
    stars = write_job(JOB, halves=(1,))
    try:
        code = cli.main(["relion-reconstruct", *argv, stars[1]])
    except SystemExit as exc:  # argparse's own usage error
        code = int(exc.code or 0)
    assert code in (1, 2)
    assert match in capsys.readouterr().err
    # the other half must not wait in vain: a failure marker is left for it
    failed = JOB / relion_extrec.RENDEZVOUS_DIR / "run_it002_class001" / "half1.failed"
    assert failed.is_file() == (code == 1)


# -- cases -----------------------------------------------------------------------------------

def test_halves_uniform_snr_match_relions_map(project: Path) -> None:
    # the same SNR everywhere: the local weights equal the FSC, i.e. RELION's own MAP weights
    stars = write_job(JOB, n=32, truth=random_field(32, seed=3))
    res = _run_pair(stars)
    for h in (1, 2):
        assert isinstance(res[h], dict), res[h]
        ours = _map(read_external_reconstruct_star(stars[h]).result)
        # measured 0.992 for this seed; 0.99 is the acceptance threshold
        assert real_space_correlation(ours, _plain_map(stars[h])) >= 0.99
    log = [json.loads(line) for line in (JOB / relion_extrec.HOOK_LOG_NAME).read_text().splitlines()]
    assert sorted(r["half"] for r in log) == [1, 2]
    assert all(r["case"] == "half" and r["n_bands"] >= 3 for r in log)
    assert not Path(read_external_reconstruct_star(stars[1]).result_star).exists()  # FSC left to RELION


def test_locally_lower_snr_is_suppressed_more(project: Path) -> None:
    # signal in one half of the box only, the same noise everywhere
    n = 48
    envelope = np.ones((n, n, n))
    envelope[:, :, : n // 2] = 0.0
    stars = write_job(JOB, n=n, truth=random_field(n, seed=5) * envelope)
    res = _run_pair(stars)
    assert isinstance(res[1], dict), res[1]
    ours = _map(read_external_reconstruct_star(stars[1]).result)
    plain = _plain_map(stars[1])
    q = n // 8  # stay a window away from the two boundaries
    weak = (slice(None), slice(None), slice(q, n // 2 - q))
    strong = (slice(None), slice(None), slice(n // 2 + q, n - q))
    ratio_weak = np.std(ours[weak]) / np.std(plain[weak])
    ratio_strong = np.std(ours[strong]) / np.std(plain[strong])
    # RELION's global weights treat both sides alike; the local ones keep less where there is no
    # signal and more where the signal is (measured 0.65 and 1.09)
    assert ratio_weak < 0.8
    assert ratio_strong > 1.0


def test_multibody_halves_are_filtered_per_body(project: Path) -> None:
    stars = write_job(Path("MultiBody/job020"), kind="body")
    res = _run_pair(stars)
    assert all(isinstance(r, dict) and r["case"] == "half" and r["body"] == 1 for r in res.values()), res
    assert (Path("MultiBody/job020") / relion_extrec.RENDEZVOUS_DIR / "run_it002_body001" / "half2.mrc").is_file()


def test_final_gets_relions_plain_map(project: Path) -> None:
    stars = write_job(JOB, halves=(0,))
    rec = relion_extrec.run(_request(stars[0]), print_line=lambda s: None)
    assert rec["case"] == "final" and rec["mode"].startswith("final: RELION's plain")
    out = _map(read_external_reconstruct_star(stars[0]).result)
    # the same numbers, written as float32
    np.testing.assert_allclose(out, _plain_map(stars[0]), rtol=0, atol=1e-6 * np.abs(out).max())


def test_classification_gets_plain_map_and_one_line(project: Path) -> None:
    stars = write_job(Path("Class3D/job003"), halves=(0,), split=False)
    lines: list[str] = []
    rec = relion_extrec.run(_request(stars[0]), print_line=lines.append)
    assert rec["case"] == "single"
    assert len(lines) == 1 and "no second half" in lines[0]
    assert Path(read_external_reconstruct_star(stars[0]).result).is_file()


def test_final_filter_uses_the_last_pair(project: Path) -> None:
    stars = write_job(JOB, iteration=2)
    assert all(isinstance(r, dict) for r in _run_pair(stars).values())
    final = write_job(JOB, iteration=3, halves=(0,))
    rec = relion_extrec.run(_request(final[0], final_mode="filter"), print_line=lambda s: None)
    assert rec["mode"] == "final: local filter of the iteration-2 halves"
    assert rec["n_bands"] >= 3
    # without the previous pair: a clear error, no map
    final = write_job(JOB, iteration=7, halves=(0,))
    with pytest.raises(InputFileError, match=r"--final filter needs the unregularised half maps of "
                                                           r"iteration 6.*use --final plain"):
        relion_extrec.run(_request(final[0], final_mode="filter"), print_line=lambda s: None)
    assert not Path(read_external_reconstruct_star(final[0]).result).exists()


def test_stale_feedback_star_is_removed(project: Path) -> None:
    stars = write_job(JOB, halves=(0,))
    s = read_external_reconstruct_star(stars[0])
    Path(s.result_star).write_text("data_\nloop_\n_rlnSpectralIndex\n_rlnFourierShellCorrelation\n0 1\n")
    write_map(s.result, np.zeros((24, 24, 24), np.float32), pixel_size_angstrom=1.0)
    lines: list[str] = []
    relion_extrec.run(_request(stars[0]), print_line=lines.append)
    assert not Path(s.result_star).exists()
    assert any("never rewrites RELION's FSC" in line for line in lines)
    assert np.abs(_map(s.result)).max() > 0  # the old all-zero map was replaced


# -- command line ------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "field", "value"), [
    ([], "final_mode", "plain"),
    (["--final", "filter"], "final_mode", "filter"),
    ([], "timeout_s", 1800.0),
    (["--timeout", "5"], "timeout_s", 5.0),
    (["--mask", "m.mrc"], "mask", "m.mrc"),
    (["--pixel-size", "1.25"], "pixel_size_angstrom", 1.25),
])
def test_option_translation(project: Path, argv: list[str], field: str, value: Any) -> None:
    """The hook's own options (the engine's are in tests/test_options.py, for every host)."""
    from locband.commands import relion_reconstruct

    stars = write_job(JOB, halves=(1,))
    args, _ = cli.build_parser().parse_known_args(["relion-reconstruct", *argv, stars[1]])
    assert getattr(relion_reconstruct.request_from_args(args), field) == value


def test_cli_writes_map_and_log(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stars = write_job(JOB, halves=(0,), split=False)
    assert cli.main(["relion-reconstruct", stars[0]]) == 0
    out = capsys.readouterr().out
    assert "locband: it002" in out
    assert Path(read_external_reconstruct_star(stars[0]).result).is_file()
    assert (JOB / relion_extrec.HOOK_LOG_NAME).is_file()


@pytest.mark.parametrize(("edit", "match"), [
    (lambda star: Path(star).unlink(), r"does not exist"),
    (lambda star: Path(star).write_text(Path(star).read_text().replace("_rlnPaddingFactor", "_rlnPaddingFactorX")),
     r"unknown label\(s\) _rlnPaddingFactorX"),
    (lambda star: Path(star.replace(".star", "_weight.mrc")).write_bytes(b"garbage"),
     r"weight .* is not (a readable MRC|an MRC) file"),
    (lambda star: Path(star.replace(".star", "_data_imag.mrc")).unlink(), r"data \(imaginary part\) .* does not exist"),
])
def test_cli_bad_input_exit_1(project: Path, capsys: pytest.CaptureFixture[str], edit: Any, match: str) -> None:
    stars = write_job(JOB, halves=(0,), split=False)
    edit(stars[0])
    assert cli.main(["relion-reconstruct", stars[0]]) == 1
    err = capsys.readouterr().err
    assert err.startswith("locband relion-reconstruct: error: ")
    assert len(err.strip().splitlines()) == 1
    assert re.search(match, err), err
