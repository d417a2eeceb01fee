"""Credentials are never printed (issue 8, item 9).

locband takes no credentials on its command line, but users type them: every error path
(argparse's usage errors, one-line errors, cryoSPARC connection errors) must show ``***``
instead. A URL with credentials in it is refused before any connection is tried.
"""

from __future__ import annotations

import pytest

from locband.cli import main

SECRET = "S3cret-pw"
ONLINE = ["cryosparc", "filter", "--project", "P3", "--workspace", "W1", "--job", "J42", "--quiet"]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(autouse=True)
def _no_cryosparc_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CRYOSPARC_BASE_URL", "CRYOSPARC_MASTER_HOSTNAME", "CRYOSPARC_BASE_PORT", "CRYOSPARC_EMAIL",
                 "CRYOSPARC_PASSWORD", "CRYOSPARC_LICENSE_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("extra", [["--password", SECRET], [f"--password={SECRET}"], ["--passwd", SECRET],
                                   ["--api-key", SECRET], ["--token", SECRET, "--license", SECRET]])
def test_password_options_are_not_echoed(capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    code, text = _run([*ONLINE, *extra], capsys)
    assert code == 2
    assert SECRET not in text
    assert "unrecognised arguments: --" in text and "***" in text
    assert "locband takes no credentials on the command line" in text


def test_secret_in_another_usage_error_is_not_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    """The secret lands where argparse quotes it (an option's value) rather than among unknown options."""
    code, text = _run(["filter", "a.mrc", "b.mrc", "--threads", SECRET, "--password", SECRET], capsys)
    assert code == 2
    assert "argument --threads: invalid int value: '***'" in text and SECRET not in text


@pytest.mark.parametrize("url", [f"http://alice:{SECRET}@cs.example.org:39000", f"https://alice:{SECRET}@host/",
                                 f"http://{SECRET}@host:39000"])
def test_url_with_credentials_is_refused_without_showing_them(capsys: pytest.CaptureFixture[str], url: str) -> None:
    pytest.importorskip("cryosparc.tools")  # the [test] extra installs it; CI turns a skip into a failure
    code, text = _run([*ONLINE, "--url", url], capsys)
    assert code == 1
    assert SECRET not in text and "alice" not in text
    assert "--url must not hold a user name or password (http" in text and "***@" in text


def test_base_url_variable_with_credentials_is_refused(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cryosparc.tools")
    monkeypatch.setenv("CRYOSPARC_BASE_URL", f"http://alice:{SECRET}@host:39000")
    code, text = _run(ONLINE, capsys)
    assert code == 1
    assert SECRET not in text and "CRYOSPARC_BASE_URL must not hold a user name or password" in text


def test_url_credentials_in_any_error_line_are_blanked(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run(["filter", f"http://alice:{SECRET}@host/h1.mrc", "h2.mrc", "--quiet"], capsys)
    assert code == 1
    assert SECRET not in text and "'http:/***@host/h1.mrc' does not exist" in text  # a path: one slash


def test_password_of_the_environment_is_blanked(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYOSPARC_PASSWORD", SECRET)
    code, text = _run(["filter", f"{SECRET}_half1.mrc", "h2.mrc", "--quiet"], capsys)
    assert code == 1
    assert SECRET not in text and "'***_half1.mrc' does not exist" in text


@pytest.mark.parametrize(("argv", "found"), [
    (["--password", "a b"], {"a b"}), (["--pass=x"], {"x"}), (["--mask", "m.mrc"], set()),
    (["--url", "http://u:p@h"], {"u:p", "p"}), (["--author", "me"], set()), (["--passes", "3"], set()),
])
def test_secrets_found_in_a_command_line(argv: list[str], found: set[str]) -> None:
    from locband._secrets import secrets_in

    assert secrets_in(argv, environ={}) == found


def test_redact_replaces_longest_first() -> None:
    from locband._secrets import redact

    assert redact("pw pw123 http://u:v@h", {"pw", "pw123"}) == "*** *** http://***@h"
