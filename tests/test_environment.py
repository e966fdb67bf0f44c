"""The two environment descriptions pin the same versions."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_environment_yml_lists_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    pins = {}
    for item in pip_section:
        if "==" in item:
            name, version = item.split("==")
            pins[name.lower()] = version
    assert pins == lock_pins()


def test_lock_pins_the_documented_versions():
    pins = lock_pins()
    expected = {"torch": "2.14.1", "torchvision": "0.29.1", "sphinx": "7.4.7", "myst-nb": "1.4.0",
                "papermill": "2.7.0", "nbval": "0.11.0", "pytorch-fid": "0.3.0", "pytest": "9.2.0"}
    for name, version in expected.items():
        assert pins[name] == version, name
    assert pins["jupyter-book"].startswith("1.0.")
    assert pins["matplotlib"].startswith("3.11.")
    major, minor = (int(v) for v in pins["scipy"].split(".")[:2])
    assert (major, minor) < (1, 18)
