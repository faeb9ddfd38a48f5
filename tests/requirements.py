"""What to do when a test dependency is missing: skip locally, fail in CI.

`scripts/test.sh` (CI's command) installs every test dependency, so a missing one there is a
broken install that must not pass as a skip; a developer running pytest without an extra
gets the skip and the line that installs it.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(message: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
