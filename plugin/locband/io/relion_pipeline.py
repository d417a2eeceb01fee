"""``default_pipeline.star``: the jobs of a RELION project, their status and their output nodes.

One reader for every RELION version (``src/pipeliner.cpp``, ``PipeLine::read`` / ``PipeLine::write``):

* 3.1 writes integer columns: ``_rlnPipeLineProcessType`` and ``_rlnPipeLineProcessStatus``
  (0 running, 1 scheduled, 2 succeeded, 3 failed, 4 aborted; ``src/pipeline_jobs.h``) and
  ``_rlnPipeLineNodeType`` (6 3D map, 10 half-map, 12 local-resolution map, 13 PDF log, ...);
* 4.0 and 5.0 write labels instead: ``_rlnPipeLineProcessTypeLabel`` (``relion.external``),
  ``_rlnPipeLineProcessStatusLabel`` (``Running``, ``Scheduled``, ``Succeeded``, ``Failed``,
  ``Aborted``) and ``_rlnPipeLineNodeTypeLabel`` (``DensityMap.mrc``, ...); 5.0 adds
  ``_rlnPipeLineNodeTypeLabelDepth``.

A table with both kinds of column is read by its labels, as RELION 4.0/5.0 read it. The status is
always given as a :class:`ProcessStatus`; node and process types keep the column the file had.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Any

from locband.errors import InputFileError
from locband.io.star import read_star

__all__ = ["ProcessStatus", "PipelineProcess", "PipelineNode", "Pipeline", "read_pipeline"]


class ProcessStatus(enum.Enum):
    """Status of a pipeline job; the value is RELION 4.0/5.0's label (``procstatus_type2label``)."""

    RUNNING = "Running"
    SCHEDULED = "Scheduled"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ABORTED = "Aborted"


#: RELION 3.1 status codes (src/pipeline_jobs.h: PROC_RUNNING ... PROC_FINISHED_ABORTED)
_STATUS_CODES_31 = {0: ProcessStatus.RUNNING, 1: ProcessStatus.SCHEDULED, 2: ProcessStatus.SUCCEEDED,
                    3: ProcessStatus.FAILED, 4: ProcessStatus.ABORTED}
_STATUS_LABELS = {s.value: s for s in ProcessStatus}


@dataclass(frozen=True)
class PipelineProcess:
    """One job of the pipeline.

    Attributes
    ----------
    name : str
        Job folder with a trailing slash, e.g. ``External/job003/``.
    alias : str or None
        ``rlnPipeLineProcessAlias`` (None where RELION writes ``None``).
    status : ProcessStatus
    type_code : int or None
        ``rlnPipeLineProcessType`` (RELION 3.1: 10 Refine3D, 99 External, ...), None in 4.0/5.0 files.
    type_label : str or None
        ``rlnPipeLineProcessTypeLabel`` (RELION 4.0/5.0: ``relion.refine3d``, ``relion.external``, ...).
    """

    name: str
    alias: str | None
    status: ProcessStatus
    type_code: int | None
    type_label: str | None


@dataclass(frozen=True)
class PipelineNode:
    """One node (a file jobs produce or read).

    Attributes
    ----------
    name : str
        Path relative to the project folder, e.g. ``External/job003/filtered.mrc``.
    type_code : int or None
        ``rlnPipeLineNodeType`` (RELION 3.1), None in 4.0/5.0 files.
    type_label : str or None
        ``rlnPipeLineNodeTypeLabel`` (RELION 4.0/5.0), None in 3.1 files.
    """

    name: str
    type_code: int | None
    type_label: str | None

    @property
    def type(self) -> int | str:
        """The node type as the file's RELION version writes it: the label (4.0/5.0), else the 3.1 code."""
        if self.type_label is not None:
            return self.type_label
        assert self.type_code is not None  # read_pipeline never builds a node with neither
        return self.type_code


@dataclass(frozen=True)
class Pipeline:
    """The content of a ``*_pipeline.star`` file.

    Attributes
    ----------
    path : str
    job_counter : int
        ``rlnPipeLineJobCounter``: the number the next job gets.
    processes : dict of str to PipelineProcess
        By job name (``External/job003/``), in file order.
    nodes : dict of str to PipelineNode
        By node name, in file order.
    input_edges : list of (node, process)
        ``data_pipeline_input_edges``: the process reads the node.
    output_edges : list of (process, node)
        ``data_pipeline_output_edges``: the process wrote the node.
    """

    path: str
    job_counter: int
    processes: dict[str, PipelineProcess]
    nodes: dict[str, PipelineNode]
    input_edges: list[tuple[str, str]]
    output_edges: list[tuple[str, str]]

    def status(self, job: str) -> ProcessStatus:
        """The status of ``job`` (``External/job003/``; the trailing slash may be left out).

        Raises
        ------
        InputFileError
            The pipeline has no such job.
        """
        key = job if job.endswith("/") else job + "/"
        if key not in self.processes:
            raise InputFileError(f"RELION pipeline {self.path!r}: no job {key!r} (jobs: {', '.join(self.processes)})")
        return self.processes[key].status

    def outputs(self, job: str) -> dict[str, PipelineNode]:
        """The nodes ``job`` wrote (from the output edges), by name."""
        key = job if job.endswith("/") else job + "/"
        return {n: self.nodes[n] for p, n in self.output_edges if p == key and n in self.nodes}


def _rows(block: Any) -> list[dict[str, Any]]:
    """A STAR block as a list of rows (a loop, a one-row list block, or nothing)."""
    if block is None:
        return []
    if isinstance(block, dict):
        return [block]
    return [dict(zip(block.columns, values, strict=True)) for values in block.itertuples(index=False, name=None)]


def _int(value: Any, *, path: str, label: str) -> int:
    try:
        out = int(str(value))
    except ValueError:
        raise InputFileError(f"RELION pipeline {path!r}: {label} must be an integer, found {value!r}") from None
    return out


def _text(value: Any) -> str:
    return str(value).strip('"')


def _status(row: dict[str, Any], *, path: str) -> ProcessStatus:
    if "rlnPipeLineProcessStatusLabel" in row:
        label = _text(row["rlnPipeLineProcessStatusLabel"])
        if label not in _STATUS_LABELS:
            raise InputFileError(f"RELION pipeline {path!r}: unknown rlnPipeLineProcessStatusLabel {label!r}, "
                                 f"expected one of {', '.join(_STATUS_LABELS)}")
        return _STATUS_LABELS[label]
    if "rlnPipeLineProcessStatus" in row:
        code = _int(row["rlnPipeLineProcessStatus"], path=path, label="rlnPipeLineProcessStatus")
        if code not in _STATUS_CODES_31:
            raise InputFileError(f"RELION pipeline {path!r}: unknown rlnPipeLineProcessStatus {code}, "
                                 "expected 0 to 4 (RELION 3.1 codes)")
        return _STATUS_CODES_31[code]
    raise InputFileError(f"RELION pipeline {path!r}: table pipeline_processes has neither "
                         "rlnPipeLineProcessStatusLabel (RELION 4.0/5.0) nor rlnPipeLineProcessStatus (3.1); "
                         f"found {', '.join(row)}")


def _process(row: dict[str, Any], *, path: str) -> PipelineProcess:
    alias = _text(row.get("rlnPipeLineProcessAlias", "None"))
    code = row.get("rlnPipeLineProcessType")
    label = row.get("rlnPipeLineProcessTypeLabel")
    return PipelineProcess(name=_text(row["rlnPipeLineProcessName"]), alias=None if alias == "None" else alias,
                           status=_status(row, path=path),
                           type_code=None if code is None else _int(code, path=path, label="rlnPipeLineProcessType"),
                           type_label=None if label is None else _text(label))


def _node(row: dict[str, Any], *, path: str) -> PipelineNode:
    code = row.get("rlnPipeLineNodeType")
    label = row.get("rlnPipeLineNodeTypeLabel")
    if code is None and label is None:
        raise InputFileError(f"RELION pipeline {path!r}: table pipeline_nodes has neither rlnPipeLineNodeTypeLabel "
                             f"(RELION 4.0/5.0) nor rlnPipeLineNodeType (3.1); found {', '.join(row)}")
    return PipelineNode(name=_text(row["rlnPipeLineNodeName"]),
                        type_code=None if code is None else _int(code, path=path, label="rlnPipeLineNodeType"),
                        type_label=None if label is None else _text(label))


def _edges(rows: list[dict[str, Any]], first: str, second: str, *, path: str, table: str) -> list[tuple[str, str]]:
    try:
        return [(_text(r[first]), _text(r[second])) for r in rows]
    except KeyError as exc:
        raise InputFileError(f"RELION pipeline {path!r}: table {table} lacks {exc.args[0]}") from None


def read_pipeline(path: str | os.PathLike[str]) -> Pipeline:
    """Read a RELION pipeline STAR file (``default_pipeline.star``) of RELION 3.1, 4.0 or 5.0.

    Parameters
    ----------
    path : path-like
        The pipeline file.

    Returns
    -------
    Pipeline

    Raises
    ------
    InputFileError
        The file is missing, not a STAR file, lacks ``data_pipeline_general``, or a table lacks the
        name or status/type columns of every RELION version.
    """
    where = str(path)
    blocks = read_star(path, what="RELION pipeline", allow_empty=True)
    general = _rows(blocks.get("pipeline_general"))
    if not general or "rlnPipeLineJobCounter" not in general[0]:
        raise InputFileError(f"RELION pipeline {where!r}: expected a data_pipeline_general block with "
                             f"rlnPipeLineJobCounter, found blocks {', '.join(blocks) or 'none'}")
    try:
        processes = [_process(r, path=where) for r in _rows(blocks.get("pipeline_processes"))]
        nodes = [_node(r, path=where) for r in _rows(blocks.get("pipeline_nodes"))]
    except KeyError as exc:
        raise InputFileError(f"RELION pipeline {where!r}: a table lacks {exc.args[0]}") from None
    return Pipeline(
        path=where, job_counter=_int(general[0]["rlnPipeLineJobCounter"], path=where, label="rlnPipeLineJobCounter"),
        processes={pr.name: pr for pr in processes}, nodes={n.name: n for n in nodes},
        input_edges=_edges(_rows(blocks.get("pipeline_input_edges")), "rlnPipeLineEdgeFromNode",
                           "rlnPipeLineEdgeProcess", path=where, table="pipeline_input_edges"),
        output_edges=_edges(_rows(blocks.get("pipeline_output_edges")), "rlnPipeLineEdgeProcess",
                            "rlnPipeLineEdgeToNode", path=where, table="pipeline_output_edges"))
