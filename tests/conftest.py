"""Fixtures shared by the workflow, demo, extraction and download tests."""
from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
XLSA17_ROOT = PROJECT_ROOT.parent / "shared" / "xlsa17"


@pytest.fixture
def run_cli(capsys):
    """Run `python -m tfvaegan ARGS` in-process: returns (exit status, stderr)."""
    from tfvaegan.cli import main

    def run(*args: str) -> tuple[int, str]:
        code = main([str(a) for a in args])
        return code, capsys.readouterr().err

    return run


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> Path:
    """A small demo benchmark (5 images per class), generated once per test session; read-only."""
    from tfvaegan.features.demo import make_demo

    out = tmp_path_factory.mktemp("small_demo")
    make_demo(out, seed=0, images_per_class=5, image_size=32, progress=False)
    return out
