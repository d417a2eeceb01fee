"""Fixtures for the RELION integration tests: the installations, one data set each, the locband hook.

``relion`` is parametrised over RELION 3.1 (on ``PATH``) and RELION 5.0.1 (``$LOCBAND_RELION5_BIN``,
see ``relion_installs.py``); a missing installation skips its cases with a reason, and under
CI=true the repository's ``conftest.py`` turns that skip into a failure, because ``.ci/run`` installs both.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import relion_phantom
import relion_runner
from relion_installs import INSTALLS, RelionInstall, require


@pytest.fixture(scope="session", params=list(INSTALLS), ids=[f"relion{v}" for v in INSTALLS])
def relion(request: pytest.FixtureRequest) -> RelionInstall:
    """A RELION installation (3.1 on PATH, then 5.0.1 from $LOCBAND_RELION5_BIN); skip if it is not usable."""
    return require(INSTALLS[request.param])


@pytest.fixture(scope="session")
def relion_dataset(relion: RelionInstall, tmp_path_factory: pytest.TempPathFactory) -> relion_phantom.Dataset:
    """The CI data set (400 particles, 40 px, 3 Å/px, three conformations), built once per installation."""
    root = tmp_path_factory.mktemp(f"relion{relion.name}_project")
    return relion_runner.build_dataset(root, env=relion.environment())


@pytest.fixture(scope="session")
def locband_hook() -> Path:
    """The locband RELION hook (``wrappers/locband-relion-reconstruct``); skip if it is not in this checkout."""
    hook = relion_runner.LOCBAND_HOOK
    if not hook.is_file():
        pytest.skip(f"the locband RELION hook {hook} is not in this checkout")
    if not os.access(hook, os.X_OK):
        pytest.fail(f"the locband RELION hook {hook} is not executable")
    return hook
