"""The README's quick start and .ci/run must agree (CI runs the README's test command verbatim)."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_quick_start_has_exactly_two_commands():
    commands = _quick_start_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    assert commands[0].endswith("locband demo")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == _quick_start_commands()[1]


def test_ci_checks_lint_and_types_before_the_tests():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    lint, types = ci.index(".venv/bin/ruff check plugin"), ci.index(".venv/bin/mypy --strict plugin/locband")
    assert lint < len(ci) - 1 and types < len(ci) - 1  # before the README's test command, the last line
    assert "set -euo pipefail" in ci  # a failure stops the run


def test_every_cli_subcommand_is_documented():
    from locband.cli import SUBCOMMANDS

    text = (ROOT / "README.md").read_text()
    for name in SUBCOMMANDS:
        assert f"locband {name}" in text, name


def test_ci_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], check=True)


def test_readme_demo_table_is_what_the_demo_prints(tmp_path, capsys):
    """The quick start's table is the default demo's output, figure for figure (it drifts otherwise)."""
    from locband.cli import main

    assert main(["demo", "--out-dir", str(tmp_path / "demo"), "--quiet", "--no-report"]) == 0
    printed = capsys.readouterr().out.splitlines()
    table = [line for line in printed if line.startswith(("correlation with the truth", "  rigid ", "  flexible "))]
    assert len(table) == 3, printed
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    for line in table:
        assert line in quick_start, line
