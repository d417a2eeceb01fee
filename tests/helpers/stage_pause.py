"""Run the locband command line and stop at one stage, so that a test can send a signal there.

Test-only: this module is not part of the package. It patches a few functions of the running
process (nothing on disk) and then runs ``locband.cli.main``::

    LOCBAND_TEST_STAGE=filter LOCBAND_TEST_MARKER=/tmp/x/at_stage python stage_pause.py filter h1.mrc h2.mrc ...

When the process reaches the stage it writes its pid to ``$LOCBAND_TEST_MARKER`` and waits
(in 20 ms sleeps, at most 10 minutes) until ``$LOCBAND_TEST_MARKER.go`` exists or a signal ends
it. Nothing depends on timing: the test waits for the marker, then signals.

Stages (each reached once per run, the first time):

``read``
    the inputs have been read and checked (``pipeline.load_inputs`` returned), nothing filtered;
``filter``
    the engine is a quarter of the way through (its first progress call at >= 25 %);
``report``
    the maps are filtered and the report is about to be drawn (``report.render_report``);
``write``
    the first output file has been written to its temporary name (``pipeline.write_map`` returned);
``replace``
    ``filtered.mrc`` has been renamed onto its name and ``filtered_half1.mrc`` is next
    (``os.replace``): a kill here lands between the renames of one set.

It can also stand in for the Python of the wrapper scripts (``LOCBAND_PYTHON`` pointing at a
shell script that runs this file): the ``-c CODE`` or ``-m locband.cli`` they put before the
subcommand is dropped.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

STAGES = ("read", "filter", "report", "write", "replace")
_reached: set[str] = set()


def pause(stage: str) -> None:
    """Stop here if this is the stage asked for (the first time only)."""
    if os.environ.get("LOCBAND_TEST_STAGE") != stage or stage in _reached:
        return
    _reached.add(stage)
    marker = Path(os.environ["LOCBAND_TEST_MARKER"])
    go = Path(f"{marker}.go")
    marker.write_text(f"{os.getpid()}\n")
    deadline = time.monotonic() + 600
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def install() -> None:
    """Patch the functions at which the stages are reached."""
    import locband.pipeline as pipeline
    import locband.report as report
    from locband.engine.local import LocalFilter

    load_inputs = pipeline.load_inputs

    def paused_load_inputs(*args: Any, **kwargs: Any) -> Any:
        out = load_inputs(*args, **kwargs)
        pause("read")
        return out

    pipeline.load_inputs = paused_load_inputs

    def with_progress(method: Any) -> Any:
        def call(self: Any, *args: Any, progress: Any = None, **kwargs: Any) -> Any:
            def progressed(fraction: float, message: str) -> None:
                if fraction >= 0.25:
                    pause("filter")
                if progress is not None:
                    progress(fraction, message)

            return method(self, *args, progress=progressed, **kwargs)

        return call

    LocalFilter.filter_owned = with_progress(LocalFilter.filter_owned)  # type: ignore[method-assign]
    LocalFilter.__call__ = with_progress(LocalFilter.__call__)  # type: ignore[method-assign]

    render_report = report.render_report

    def paused_render_report(*args: Any, **kwargs: Any) -> Any:
        pause("report")
        return render_report(*args, **kwargs)

    report.render_report = paused_render_report

    write_map = pipeline.write_map

    def paused_write_map(*args: Any, **kwargs: Any) -> Any:
        out = write_map(*args, **kwargs)
        pause("write")
        return out

    pipeline.write_map = paused_write_map

    replace = os.replace

    def paused_replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(dst).name == "filtered_half1.mrc":
            pause("replace")
        return replace(src, dst, *args, **kwargs)

    os.replace = paused_replace


def main(argv: list[str]) -> int:
    """Install the stage patches and run ``locband`` with ``argv``."""
    if argv[:1] in (["-c"], ["-m"]):  # called as the wrappers call Python: -c CODE / -m locband.cli
        argv = argv[2:]
    install()
    from locband.cli import main as locband_main

    return locband_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
