"""locband.io.relion_pipeline on default_pipeline.star files written by RELION 3.1.3 and 5.0.1.

The files in ``tests/io/data/`` are unedited copies of what the programs wrote in
``integration/test_relion_pipeliner.py`` (locband's External job run by ``relion_pipeliner --RunJobs``):
``pipeline_31_*.star`` by Debian's RELION 3.1.3, ``pipeline_50_*.star`` by RELION 5.0.1 built from
``../shared/relion5``; ``*_succeeded`` after a finished job, ``*_failed`` after a job that failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from locband.errors import InputFileError
from locband.io.relion_pipeline import ProcessStatus, read_pipeline

DATA = Path(__file__).parent / "data"
JOB = "External/job001/"
OUTPUTS = ["External/job001/filtered.mrc", "External/job001/filtered_half1.mrc",
           "External/job001/local_resolution.mrc", "External/job001/report.pdf"]


def test_31_succeeded_job_with_integer_columns() -> None:
    p = read_pipeline(DATA / "pipeline_31_succeeded.star")
    assert p.job_counter == 2
    assert list(p.processes) == [JOB]
    proc = p.processes[JOB]
    assert (proc.status, proc.type_code, proc.type_label, proc.alias) == (ProcessStatus.SUCCEEDED, 99, None, None)
    assert p.status("External/job001") == ProcessStatus.SUCCEEDED  # trailing slash optional
    assert {n: node.type for n, node in p.outputs(JOB).items()} == dict(zip(OUTPUTS, [6, 10, 12, 13], strict=True))
    assert all(node.type_label is None for node in p.nodes.values())
    assert p.nodes["mask.mrc"].type_code == 7
    assert p.input_edges == [("Refine3D/job001/run_half1_class001_unfil.mrc", JOB), ("mask.mrc", JOB)]


def test_31_failed_job() -> None:
    p = read_pipeline(DATA / "pipeline_31_failed.star")
    assert p.status(JOB) == ProcessStatus.FAILED
    assert p.outputs(JOB) == {} and p.output_edges == []
    assert p.nodes["mask.mrc"].type == 6


def test_50_succeeded_job_with_label_columns() -> None:
    p = read_pipeline(DATA / "pipeline_50_succeeded.star")
    assert p.job_counter == 2
    proc = p.processes[JOB]
    assert (proc.status, proc.type_code, proc.type_label, proc.alias) == (ProcessStatus.SUCCEEDED, None,
                                                                          "relion.external", None)
    labels = ["DensityMap.mrc", "DensityMap.mrc.halfmap", "Image3D.mrc.localresmap", "LogFile.pdf.relion"]
    assert {n: node.type for n, node in p.outputs(JOB).items()} == dict(zip(OUTPUTS, labels, strict=True))
    assert all(node.type_code is None for node in p.nodes.values())
    assert p.nodes["mask.mrc"].type_label == "Mask3D.mrc"


def test_50_failed_job() -> None:
    p = read_pipeline(DATA / "pipeline_50_failed.star")
    assert p.status(JOB) == ProcessStatus.FAILED
    assert p.outputs(JOB) == {}


@pytest.mark.parametrize(("code", "status"), [(0, ProcessStatus.RUNNING), (1, ProcessStatus.SCHEDULED),
                                              (2, ProcessStatus.SUCCEEDED), (3, ProcessStatus.FAILED),
                                              (4, ProcessStatus.ABORTED)])
def test_every_31_status_code(tmp_path: Path, code: int, status: ProcessStatus) -> None:
    text = (DATA / "pipeline_31_succeeded.star").read_text().replace("       None           99            2",
                                                                    f"       None           99            {code}")
    path = tmp_path / "default_pipeline.star"
    path.write_text(text)
    assert read_pipeline(path).status(JOB) == status


@pytest.mark.parametrize("status", list(ProcessStatus))
def test_every_50_status_label(tmp_path: Path, status: ProcessStatus) -> None:
    text = (DATA / "pipeline_50_succeeded.star").read_text().replace("Succeeded", status.value)
    path = tmp_path / "default_pipeline.star"
    path.write_text(text)
    assert read_pipeline(path).status(JOB) == status


def test_labels_win_where_both_columns_are_present(tmp_path: Path) -> None:
    """RELION 4.0/5.0 read a table with both kinds of column by its labels; so does locband."""
    path = tmp_path / "default_pipeline.star"
    path.write_text("data_pipeline_general\n_rlnPipeLineJobCounter 2\n\ndata_pipeline_processes\nloop_\n"
                    "_rlnPipeLineProcessName\n_rlnPipeLineProcessAlias\n_rlnPipeLineProcessType\n"
                    "_rlnPipeLineProcessStatus\n_rlnPipeLineProcessStatusLabel\n"
                    "External/job001/ None 99 2 Failed\n")
    assert read_pipeline(path).status(JOB) == ProcessStatus.FAILED


def test_fresh_pipeline_has_no_jobs(tmp_path: Path) -> None:
    path = tmp_path / "default_pipeline.star"
    path.write_text("# version 30001\n\ndata_pipeline_general\n\n_rlnPipeLineJobCounter                       1\n")
    p = read_pipeline(path)
    assert (p.job_counter, p.processes, p.nodes, p.input_edges, p.output_edges) == (1, {}, {}, [], [])


@pytest.mark.parametrize(("text", "message"), [
    (None, "does not exist"),
    ("data_other\n_rlnFoo 1\n", "expected a data_pipeline_general block"),
    ("data_pipeline_general\n_rlnPipeLineJobCounter 2\n\ndata_pipeline_processes\nloop_\n"
     "_rlnPipeLineProcessName\n_rlnPipeLineProcessAlias\nExternal/job001/ None\n",
     "neither rlnPipeLineProcessStatusLabel"),
    ("data_pipeline_general\n_rlnPipeLineJobCounter 2\n\ndata_pipeline_processes\nloop_\n"
     "_rlnPipeLineProcessName\n_rlnPipeLineProcessAlias\n_rlnPipeLineProcessStatusLabel\nExternal/job001/ None Done\n",
     "unknown rlnPipeLineProcessStatusLabel 'Done'"),
    ("data_pipeline_general\n_rlnPipeLineJobCounter 2\n\ndata_pipeline_processes\nloop_\n"
     "_rlnPipeLineProcessName\n_rlnPipeLineProcessAlias\n_rlnPipeLineProcessStatus\nExternal/job001/ None 7\n",
     "unknown rlnPipeLineProcessStatus 7"),
    ("data_pipeline_general\n_rlnPipeLineJobCounter 2\n\ndata_pipeline_nodes\nloop_\n"
     "_rlnPipeLineNodeName\n_rlnPipeLineNodeTypeLabelDepth\nmask.mrc 1\n",
     "neither rlnPipeLineNodeTypeLabel"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "default_pipeline.star"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InputFileError, match=message) as info:
        read_pipeline(path)
    assert str(path) in str(info.value)


def test_job_that_is_not_there(tmp_path: Path) -> None:
    p = read_pipeline(DATA / "pipeline_31_succeeded.star")
    with pytest.raises(InputFileError, match="no job 'External/job002/'"):
        p.status("External/job002/")
