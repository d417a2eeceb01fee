"""JSON summaries of a filtering run (atomic)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from locband.io.atomic import atomic_write_text

__all__ = ["write_json", "read_json"]


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON atomically."""
    target = Path(path)
    atomic_write_text(target, json.dumps(data, indent=2, sort_keys=False, default=float) + "\n")
    return target


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON object."""
    with open(path, encoding="utf-8") as fh:
        out = json.load(fh)
    if not isinstance(out, dict):
        raise ValueError(f"{str(path)!r} does not hold a JSON object")
    return out
