"""The run report (PNG and PDF). Placeholder until the report issue lands: writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_report"]


def write_report(out_dir: Path, *, summary: dict[str, Any], raw: np.ndarray, result: Any,
                 mask: np.ndarray | None) -> list[Path]:
    """Write ``report.png`` and ``report.pdf`` into ``out_dir``; returns their paths."""
    return []
