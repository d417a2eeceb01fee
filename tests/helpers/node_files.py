"""RELION_OUTPUT_NODES.star written and read back by the tests (the package writes it as part of an output set)."""

from __future__ import annotations

import os
from pathlib import Path

import starfile

from locband.io.atomic import atomic_write_text
from locband.io.relion_nodes import OUTPUT_NODES_NAME, OutputNode, format_output_nodes


def write_output_nodes(out_dir: str | os.PathLike[str], nodes: list[OutputNode]) -> Path:
    """Write ``RELION_OUTPUT_NODES.star`` into ``out_dir``; returns its path."""
    target = Path(out_dir) / OUTPUT_NODES_NAME
    atomic_write_text(target, format_output_nodes(nodes))
    return target


def read_output_nodes(path: str | os.PathLike[str]) -> list[OutputNode]:
    """Read a node file with ``starfile``, as RELION's own STAR parser sees it."""
    table = starfile.read(path, always_dict=True)["output_nodes"]
    return [OutputNode(str(r["rlnPipeLineNodeName"]), int(r["rlnPipeLineNodeType"]), str(r["rlnPipeLineNodeTypeLabel"]))
            for _, r in table.iterrows()]
