"""RELION templates: each is parsed, and every option is checked against a flag locband accepts."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import starfile

from locband import cli
from locband.adapters.relion_external import ExternalRequest
from locband.commands.relion_external import parse_argv as parse_relion_external_args
from locband.options import DenoiseSettings

REPO = Path(__file__).resolve().parents[2]
RELION = REPO / "templates" / "relion"
SCHEDULE = RELION / "schedule_3.1" / "Schedules" / "locband_refine"
SCHEME = RELION / "scheme_5.0" / "Schemes" / "locband_refine"

# RelionJob::initialiseExternalJob (3.1.3 src/pipeline_jobs.cpp) plus the Running tab options
EXTERNAL_JOB_OPTIONS = (
    {"fn_exe", "in_mov", "in_mic", "in_part", "in_coords", "in_3dref", "in_mask", "nr_threads", "other_args",
     "do_queue", "qsub", "qsubscript", "queuename", "min_dedicated"}
    | {f"param{i}_{k}" for i in range(1, 11) for k in ("label", "value")}
)
# the words RELION replaces in a queue submission template (3.1.3 RelionJob::prepareFinalCommand)
QSUB_WORDS = {"XXXmpinodesXXX", "XXXthreadsXXX", "XXXcoresXXX", "XXXdedicatedXXX", "XXXnodesXXX", "XXXnameXXX",
              "XXXerrfileXXX", "XXXoutfileXXX", "XXXqueueXXX", "XXXcommandXXX"}
QSUB_WORDS |= {f"XXXextra{i}XXX" for i in range(1, 5)}


def external_command(options: dict[str, str], out_dir: str = "External/job005/") -> list[str]:
    """The argv RELION 3.1 builds for an External job from its options (getCommandsExternalJob)."""
    argv = shlex.split(options["fn_exe"]) + ["--o", out_dir]
    for key, flag in (("in_mov", "--in_movies"), ("in_mic", "--in_mics"), ("in_part", "--in_parts"),
                      ("in_coords", "--in_coords"), ("in_3dref", "--in_3dref"), ("in_mask", "--in_mask")):
        if options.get(key):
            argv += [flag, options[key]]
    for i in range(1, 11):
        label = options.get(f"param{i}_label", "")
        if label:
            argv += [f"--{label}"] + ([options[f"param{i}_value"]] if options.get(f"param{i}_value") else [])
    argv += ["--j", options.get("nr_threads", "1")]
    return argv + shlex.split(options.get("other_args", ""))


def check_locband_command(argv: list[str]) -> ExternalRequest:
    """fn_exe is locband's External job, and locband understands every option the job passes."""
    exe = argv[0]
    if Path(exe).name == "locband-relion-external":
        assert (REPO / "wrappers" / "locband-relion-external").is_file()
        rest = argv[1:]
    else:
        assert exe == "locband" and argv[1] in cli.SUBCOMMANDS and argv[1] == "relion-external", argv[:2]
        rest = argv[2:]
    req = parse_relion_external_args(rest)
    assert req.ignored == (), f"options locband would ignore: {req.ignored}"
    return req


def job_options(path: Path) -> dict[str, str]:
    table = starfile.read(path, always_dict=True)["joboptions_values"]
    return {str(k): ("" if str(v) in ('""', "nan") else str(v)) for k, v in
            zip(table["rlnJobOptionVariable"], table["rlnJobOptionValue"], strict=True)}


# --------------------------------------------------------------------------------------------

def test_external_job_star() -> None:
    blocks = starfile.read(RELION / "external_job.star", always_dict=True)
    job = blocks["job"]
    assert int(job["rlnJobType"]) == 99  # RELION 3.1: PROC_EXTERNAL
    assert job["rlnJobTypeLabel"] == "relion.external"  # RELION 4.0/5.0
    opts = job_options(RELION / "external_job.star")
    assert set(opts) == EXTERNAL_JOB_OPTIONS
    assert opts["in_3dref"].endswith("run_half1_class001_unfil.mrc")
    assert Path(opts["qsubscript"]).name in {p.name for p in RELION.iterdir()}
    check_locband_command(external_command(opts))
    req = parse_relion_external_args(external_command(opts)[2:])
    assert req.max_threads == int(opts["nr_threads"])


def _recipe_defaults(text: str) -> dict[str, str]:
    return dict(re.findall(r'^(\w+)="\$\{\1:-([^}]*)\}"', text, flags=re.M))


def test_pipeliner_recipe() -> None:
    path = RELION / "pipeliner_addjob.sh"
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    found = re.findall(r'--addJob External --addJobOptions "([^"]*)"', text)
    assert len(found) == 1
    spec = found[0]
    # RelionJob::setOption: exactly one blank on each side of "==", none after ";"
    items = [s for s in spec.split(";") if s]
    assert spec.endswith(";") and all(re.fullmatch(r"[a-z0-9_]+ == \S.*", s) and not s.endswith(" ") for s in items)
    defaults = _recipe_defaults(text)
    options = {}
    for item in items:
        key, value = item.split(" == ", 1)
        assert key in EXTERNAL_JOB_OPTIONS, key
        options[key] = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], value)
    req = check_locband_command(external_command(options))
    assert req.interpretation is None  # INTERPRETATION=no by default
    options["param4_value"] = "yes"  # INTERPRETATION=yes
    assert options["param4_label"] == "interpretation"
    assert check_locband_command(external_command(options)).interpretation == DenoiseSettings()
    assert "--RunJobs" in text


@pytest.mark.parametrize("path", [RELION / "external_job.star", SCHEDULE / "locband" / "job.star",
                                  SCHEME / "locband" / "job.star"], ids=["external_job", "schedule", "scheme"])
def test_job_templates_show_the_interpretation_switch(path: Path) -> None:
    """Every External job template lists the switch (off), so that the GUI shows it; yes turns it on."""
    opts = {**job_options(path), "in_3dref": "Refine3D/job012/run_half1_class001_unfil.mrc",
            "in_mask": "MaskCreate/job001/mask.mrc"}
    label = next(k for k, v in opts.items() if k.endswith("_label") and v == "interpretation")
    value = label.replace("_label", "_value")
    assert opts[value] == "no"
    assert check_locband_command(external_command(opts)).interpretation is None
    assert check_locband_command(external_command({**opts, value: "yes"})).interpretation == DenoiseSettings()


def test_slurm_template_words_and_threads(tmp_path: Path) -> None:
    path = RELION / "slurm_qsub.sh"
    text = path.read_text()
    words = set(re.findall(r"XXX\w+?XXX", text))
    assert words <= QSUB_WORDS and "XXXcommandXXX" in words
    assert re.search(r"^#SBATCH --cpus-per-task=XXXthreadsXXX$", text, flags=re.M)
    # fill it in as RELION does and run it: the command sees the thread count RELION asked for
    values = {"XXXthreadsXXX": "3", "XXXmpinodesXXX": "1", "XXXnameXXX": "External/job005/",
              "XXXqueueXXX": "cpu", "XXXoutfileXXX": str(tmp_path / "run.out"),
              "XXXerrfileXXX": str(tmp_path / "run.err"),
              "XXXcommandXXX": 'echo "threads=$OMP_NUM_THREADS"'}
    script = tmp_path / "job.sh"
    script.write_text(re.sub(r"XXX\w+?XXX", lambda m: values[m.group(0)], text))
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "threads=3"


def _extrec_command() -> list[str]:
    env = {**os.environ, "LOCBAND_HOME": str(REPO)}
    out = subprocess.run(["bash", "-c", 'set -eu; source "$1"; printf %s "$RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE"',
                          "bash", str(RELION / "extrec.env")], capture_output=True, text=True, check=True, env=env)
    return shlex.split(out.stdout)


def test_extrec_env_recipe_shape() -> None:
    text = (RELION / "extrec.env").read_text()
    argv = _extrec_command()
    assert argv[0] == str(REPO / "wrappers" / "locband-relion-reconstruct")
    # every rank must see the variable: the mpirun line forwards it
    assert re.search(r"mpirun -x RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE .*relion_refine_mpi .*--external_reconstruct",
                     text)


def test_extrec_env_flags_against_relion_reconstruct() -> None:
    """Needs the `relion-reconstruct` subcommand (branch relion-hook): fails, never skips, until merged."""
    argv = _extrec_command()
    assert (REPO / "wrappers" / "locband-relion-reconstruct").is_file(), "wrappers/locband-relion-reconstruct missing"
    assert "relion-reconstruct" in cli.SUBCOMMANDS, "subcommand relion-reconstruct is not registered"
    parser = cli.build_parser()
    args, extra = parser.parse_known_args(["relion-reconstruct", "run_it001_half1_class001_external_reconstruct.star",
                                           *argv[1:]])
    assert extra == [], f"flags relion-reconstruct does not accept: {extra}"


# --------------------------------------------------------------------------------------------
# the 3.1 Schedule
# --------------------------------------------------------------------------------------------

def test_schedule_structure() -> None:
    sched = starfile.read(SCHEDULE / "schedule.star", always_dict=True)
    assert sched["schedule_general"]["rlnScheduleName"] == "Schedules/locband_refine/"
    table = sched["schedule_jobs"]
    jobs = dict(zip(table["rlnScheduleJobNameOriginal"], table["rlnScheduleJobMode"], strict=True))
    assert jobs == {"refine": "new", "locband": "new"}
    edges = sched["schedule_edges"]
    assert list(zip(edges["rlnScheduleEdgeInputNodeName"], edges["rlnScheduleEdgeOutputNodeName"], strict=True)) == [
        ("refine", "locband")]
    assert sched["schedule_general"]["rlnScheduleCurrentNodeName"] == "refine"
    for name in jobs:
        assert (SCHEDULE / name / "job.star").is_file()
    assert int(starfile.read(SCHEDULE / "refine" / "job.star", always_dict=True)["job"]["rlnJobType"]) == 10
    assert int(starfile.read(SCHEDULE / "locband" / "job.star", always_dict=True)["job"]["rlnJobType"]) == 99


def test_schedule_variables_are_defined() -> None:
    sched = starfile.read(SCHEDULE / "schedule.star", always_dict=True)
    defined = set(sched["schedule_strings"]["rlnScheduleStringVariableName"])
    floats = sched["schedule_floats"]
    defined |= {floats["rlnScheduleFloatVariableName"]} if isinstance(floats, dict) else set(
        floats["rlnScheduleFloatVariableName"])
    used = set()
    for name in ("refine", "locband"):
        used |= {v[2:] for v in job_options(SCHEDULE / name / "job.star").values() if v.startswith("$$")}
    assert used and used <= defined


def test_schedule_locband_job_reads_refine_output() -> None:
    opts = job_options(SCHEDULE / "locband" / "job.star")
    pipe = starfile.read(SCHEDULE / "schedule_pipeline.star", always_dict=True)
    outputs = dict(zip(pipe["pipeline_output_edges"]["rlnPipeLineEdgeToNode"],
                       pipe["pipeline_output_edges"]["rlnPipeLineEdgeProcess"], strict=True))
    # the scheduler swaps Schedules/locband_refine/refine/ for the real Refine3D job folder
    assert outputs[opts["in_3dref"]] == "Schedules/locband_refine/refine/"
    opts = {**opts, "in_mask": "MaskCreate/job001/mask.mrc"}
    check_locband_command(external_command(opts))


# --------------------------------------------------------------------------------------------
# the 4.0/5.0 Scheme (written by RELION 5.0.1's relion_pipeliner and relion_schemer)
# --------------------------------------------------------------------------------------------

def _scheme_values(table: Any, kind: str) -> dict[str, str]:
    names, values = table[f"rlnScheme{kind}VariableName"], table[f"rlnScheme{kind}VariableValue"]
    return {str(k): str(v) for k, v in zip(names, values, strict=True)}


def test_scheme_structure() -> None:
    scheme = starfile.read(SCHEME / "scheme.star", always_dict=True)
    assert scheme["scheme_general"]["rlnSchemeName"] == "Schemes/locband_refine/"
    assert scheme["scheme_general"]["rlnSchemeCurrentNodeName"] == "refine"
    table = scheme["scheme_jobs"]
    jobs = dict(zip(table["rlnSchemeJobNameOriginal"], table["rlnSchemeJobMode"], strict=True))
    assert jobs == {"refine": "new", "locband": "new"}
    edges = scheme["scheme_edges"]
    assert list(zip(edges["rlnSchemeEdgeInputNodeName"], edges["rlnSchemeEdgeOutputNodeName"],
                    edges["rlnSchemeEdgeIsFork"], strict=True)) == [("refine", "locband", 0)]  # one plain edge
    labels = {name: starfile.read(SCHEME / name / "job.star", always_dict=True)["job"]["rlnJobTypeLabel"]
              for name in jobs}
    assert labels == {"refine": "relion.refine3d", "locband": "relion.external"}
    # RELION 5 wrote every file (CURRENT_MDT_VERSION 50001); 3.1 cannot read Schemes
    for path in (SCHEME / "scheme.star", SCHEME / "refine" / "job.star", SCHEME / "locband" / "job.star"):
        assert path.read_text().lstrip().startswith("# version 50001"), path


def test_scheme_variables_are_defined() -> None:
    scheme = starfile.read(SCHEME / "scheme.star", always_dict=True)
    defined = _scheme_values(scheme["scheme_strings"], "String") | _scheme_values(scheme["scheme_floats"], "Float")
    used = set()
    for name in ("refine", "locband"):
        used |= {v[2:] for v in job_options(SCHEME / name / "job.star").values() if v.startswith("$$")}
    assert used == set(defined) == {"particles", "reference", "mask", "symmetry", "diameter"}
    assert float(defined["diameter"]) > 0


def test_scheme_refine_job_splits_halves() -> None:
    opts = job_options(SCHEME / "refine" / "job.star")
    # relion_refine_mpi with split halves needs a leader and one follower per half
    assert int(opts["nr_mpi"]) >= 3
    assert (opts["fn_img"], opts["fn_ref"], opts["fn_mask"]) == ("$$particles", "$$reference", "$$mask")
    assert opts["do_blush"] == "No"  # --blush bypasses external programs (README, RELION refinement hook)


def test_scheme_locband_job_reads_refine_output() -> None:
    opts = job_options(SCHEME / "locband" / "job.star")
    assert set(opts) == EXTERNAL_JOB_OPTIONS
    # relion_schemer replaces "Schemes/locband_refine/refine/" with the Refine3D job it created
    # (Scheme::changeStringForJobnames), so this names that job's half 1
    assert opts["in_3dref"] == "Schemes/locband_refine/refine/run_half1_class001_unfil.mrc"
    assert opts["in_mask"] == "$$mask"
    assert Path(opts["qsubscript"]).name in {p.name for p in RELION.iterdir()}
    opts = {**opts, "in_3dref": "Refine3D/job012/run_half1_class001_unfil.mrc", "in_mask": "MaskCreate/job001/mask.mrc"}
    check_locband_command(external_command(opts))
