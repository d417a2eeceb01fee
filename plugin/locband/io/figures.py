"""Figures to files: the report's PNG and PDF (matplotlib's Agg and PDF backends, no pyplot state)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["write_png", "write_pdf"]


def write_png(path: str | os.PathLike[str], figure: Any, *, dpi: int) -> None:
    """Save a ``matplotlib.figure.Figure`` as PNG to ``path`` (the caller makes it atomic)."""
    figure.savefig(path, format="png", dpi=dpi)


def write_pdf(path: str | os.PathLike[str], figures: Sequence[Any], *, metadata: Mapping[str, str]) -> None:
    """Save figures as the pages of one PDF file at ``path`` (the caller makes it atomic)."""
    # matplotlib is imported when a report is written: the commands that never draw one (the
    # RELION hook runs once per half and iteration) do not pay for its import
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path, metadata=dict(metadata)) as pdf:
        for figure in figures:
            pdf.savefig(figure)
