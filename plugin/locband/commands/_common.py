"""What the subcommands share: the engine's options, read from and into the option table."""

from __future__ import annotations

import argparse

from locband.options import ENGINE, EngineSettings, add_arguments, values_from_namespace

__all__ = ["add_engine_arguments", "engine_from_args"]


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Register every engine option (:data:`locband.options.ENGINE`) as a group "filter settings"."""
    add_arguments(parser.add_argument_group("filter settings"), ENGINE)


def engine_from_args(args: argparse.Namespace) -> EngineSettings:
    """The engine settings of parsed options.

    Raises
    ------
    ValueError
        A setting out of range (the message names it).
    """
    return EngineSettings.from_values(values_from_namespace(args, ENGINE))
