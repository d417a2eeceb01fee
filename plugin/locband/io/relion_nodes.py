"""``RELION_OUTPUT_NODES.star``: the outputs of an External job that RELION turns into nodes.

One table ``data_output_nodes`` with three columns, so that every RELION version understands it
(``src/pipeliner.cpp``, ``PipeLine::read`` of the job's node file):

* 3.1 reads ``_rlnPipeLineNodeName`` and the integer ``_rlnPipeLineNodeType`` and ignores (with a
  warning) ``_rlnPipeLineNodeTypeLabel``;
* 4.0 and 5.0 read ``_rlnPipeLineNodeName`` and the string ``_rlnPipeLineNodeTypeLabel`` and
  ignore the integer column.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from locband.errors import InputFileError

__all__ = ["OUTPUT_NODES_NAME", "OutputNode", "format_output_nodes", "write_node_file"]

OUTPUT_NODES_NAME = "RELION_OUTPUT_NODES.star"


@dataclass(frozen=True)
class OutputNode:
    """One output node.

    Attributes
    ----------
    name : str
        Path relative to the RELION project folder (``External/job012/filtered.mrc``).
    type_code : int
        RELION 3.1 node type (``src/pipeline_jobs.h``: 6 3D map, 10 half-map, 12 local-resolution map, 13 PDF log).
    type_label : str
        RELION 4.0/5.0 node type label (``DensityMap.mrc``, ``DensityMap.mrc.halfmap``, ...).
    """

    name: str
    type_code: int
    type_label: str


def _star_value(text: str) -> str:
    if not text or any(c.isspace() for c in text) or text.startswith(("_", "#", "data_", "loop_")):
        raise InputFileError(f"RELION node name {text!r} cannot be written to a STAR file: "
                             "expected a non-empty path without blanks")
    return text


def format_output_nodes(nodes: list[OutputNode]) -> str:
    """Return the text of ``RELION_OUTPUT_NODES.star`` for ``nodes``."""
    width = max([len(n.name) for n in nodes] + [10])
    lines = ["", "# version 30001", "", "data_output_nodes", "", "loop_",
             "_rlnPipeLineNodeName #1", "_rlnPipeLineNodeType #2", "_rlnPipeLineNodeTypeLabel #3"]
    for n in nodes:
        lines.append(f"{_star_value(n.name):<{width}} {n.type_code:4d} {_star_value(n.type_label)}")
    return "\n".join(lines) + "\n\n"


def write_node_file(path: str | os.PathLike[str], text: str) -> None:
    """Write node-file text (:func:`format_output_nodes`) to ``path`` (the caller makes it atomic)."""
    Path(path).write_text(text, encoding="utf-8")
