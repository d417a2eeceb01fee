"""JSON files of a run: the summary (atomic), its reading back, and append-only JSON-lines logs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from locband.errors import InputFileError
from locband.io.atomic import atomic_write_text

__all__ = ["write_json", "read_json", "read_json_if_any", "read_run_summary", "append_json_line"]


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON atomically."""
    target = Path(path)
    atomic_write_text(target, json.dumps(data, indent=2, sort_keys=False, default=float) + "\n")
    return target


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON object.

    Raises
    ------
    OSError
        The file cannot be read.
    ValueError
        It is not JSON, or not a JSON object.
    """
    with open(path, encoding="utf-8") as fh:
        out = json.load(fh)
    if not isinstance(out, dict):
        raise ValueError(f"{str(path)!r} does not hold a JSON object")
    return out


def read_json_if_any(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A JSON object, or None when nothing is at ``path`` (a state file not written yet).

    Raises
    ------
    OSError, ValueError
        As :func:`read_json`, for a file that exists.
    """
    if not Path(path).exists():
        return None
    return read_json(path)


def read_run_summary(path: str | os.PathLike[str], *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read the ``summary.json`` of a finished run.

    Raises
    ------
    InputFileError
        The file is missing, unreadable, not a JSON object, or lacks a key of ``required``.
    """
    p = str(path)
    try:
        summary = read_json(p)
    except FileNotFoundError:
        raise InputFileError(f"{p!r} does not exist: expected the output folder of a locband run") from None
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{p!r} is not a readable locband summary: {exc}") from None
    for key in required:
        if key not in summary:
            raise InputFileError(f"{p!r} has no {key!r}: expected the summary.json of a locband run")
    return summary


def append_json_line(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON object as one line, in one ``write`` on an ``O_APPEND`` file.

    Writers in several processes (the two half-set calls of the RELION hook) never interleave
    within a line.
    """
    line = (json.dumps(record, default=float) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
