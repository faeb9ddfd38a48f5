"""constraints.txt (made by scripts/lock.sh) pins what CI, run.sh and the image install.

A dependency added to pyproject.toml without refreshing the lock would install unpinned;
a pin outside pyproject's range would make pip fail (or, with a loose range, hide that
the lock is stale). Both are caught here, without installing anything."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = list(project["dependencies"])
    for extra in ("test", "llm-test"):
        listed += project["optional-dependencies"][extra]
    return [Requirement(text) for text in listed]


def test_every_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    for requirement in _requirements():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in constraints.txt: run scripts/lock.sh"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's "
            f"{requirement.specifier}: run scripts/lock.sh")


def test_the_install_commands_use_the_constraints() -> None:
    for path in ("scripts/test.sh", "scripts/run.sh", "docker/Dockerfile"):
        text = (ROOT / path).read_text()
        # The image installs the project itself with --no-deps: nothing to resolve there.
        installs = [line for line in text.splitlines()
                    if "pip install" in line and not line.lstrip().startswith("#")
                    and "--no-deps ." not in line]
        assert installs, path
        for line in installs:
            assert "-c constraints.txt" in line, f"{path}: {line.strip()}"
