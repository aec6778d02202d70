"""Fixtures every test module shares: the toy benchmark (tests/toy.py) written once per session,
the tiny config that trains on it, the small demo, and the CLI run in-process.

Two commands run the suite (README): `python -m pytest -m "not slow"` is the development loop;
`python -m pytest` adds the end-to-end runs (Snakemake for real, torch.compile, real processes, the
SLURM cluster when one is started) and is what CI runs. Both run on pytest-xdist's workers, one per
CPU (pyproject.toml); the end-to-end runs are shared (`tiny_workflow`) and grouped so that one
worker makes each while the others go on.
"""
from __future__ import annotations

import os

# One thread per xdist worker (one worker per CPU): more would make the workers' torch threads contend.
# Set before torch is imported, and inherited by the subprocesses the tests start (the workflow's jobs
# set their own: OMP_NUM_THREADS={threads}).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest
import yaml
from toy import TINY, load_test_split, write_toy

from tfvaegan.config import from_mapping

PROJECT_ROOT = Path(__file__).resolve().parents[1]
XLSA17_ROOT = PROJECT_ROOT.parent / "shared" / "xlsa17"
# Under CI the real xlsa17 splits must be there: a test marked `shared` fails instead of skipping.
SHARED_REQUIRED = os.environ.get("CI") == "true"


def require_shared(path: Path) -> None:
    """Skip the running test when PATH (a file of ../shared) is absent, or fail it under CI=true."""
    if not Path(path).exists():
        message = f"{path} absent (../shared/xlsa17: see its README)"
        if SHARED_REQUIRED:
            pytest.fail(f"{message}; under CI=true the tests on the real xlsa17 splits must run", pytrace=False)
        pytest.skip(message)


def pytest_runtest_setup(item):
    """`@pytest.mark.shared(path)`: the test reads PATH of ../shared (require_shared)."""
    for mark in item.iter_markers("shared"):
        require_shared(mark.args[0])


@pytest.fixture
def run_cli(capsys):
    """Run `python -m tfvaegan ARGS` in-process: returns (exit status, stderr)."""
    from tfvaegan.cli import main

    def run(*args: str) -> tuple[int, str]:
        code = main([str(a) for a in args])
        return code, capsys.readouterr().err

    return run


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> tuple[Path, Path]:
    """A data root holding the toy benchmark TOY, and the TINY config as a YAML file beside it.
    Tests may add datasets of their own under the root; none changes TOY."""
    root = tmp_path_factory.mktemp("toy_data")
    write_toy(root)
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    return root, config


@pytest.fixture(scope="session")
def toy(toy_root):
    """(data root, the TINY config resolved against TOY, TOY's paper split as tensors on the CPU)."""
    root, _ = toy_root
    cfg = from_mapping({**TINY, "dataset": "TOY"})
    zdata = load_test_split(root, cfg)
    return root, cfg.resolved(zdata.res_size, zdata.att_size, zdata.n_classes), zdata


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> Path:
    """A small demo benchmark (5 images per class), generated once per test session; read-only."""
    from tfvaegan.features.demo import make_demo

    out = tmp_path_factory.mktemp("small_demo")
    make_demo(out, seed=0, images_per_class=5, image_size=32, progress=False)
    return out


def _session_root(tmp_path_factory) -> Path:
    """The test session's temporary root, which every xdist worker's own folder is in."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@pytest.fixture(scope="session")
def tiny_workflow_config(tmp_path_factory) -> Path:
    """The tiny workflow run's configuration file, written but not yet run (tests/tiny_workflow.py)."""
    from tiny_workflow import tiny_config_file

    return tiny_config_file(_session_root(tmp_path_factory))


@pytest.fixture(scope="session")
def tiny_workflow(tmp_path_factory):
    """The tiny workflow run every test of the workflow's outputs reads (tests/tiny_workflow.py); read-only
    but for tests that restore what they change. One run per session, whatever the number of xdist workers."""
    from tiny_workflow import make_tiny_run

    return make_tiny_run(_session_root(tmp_path_factory))


# The end-to-end groups, longest first: xdist hands the first collected tests out first, so each group
# starts on a worker of its own at once while the other workers take the short tests.
LONG_GROUPS = ("readme_main_job", "tiny_workflow")


def pytest_collection_modifyitems(items):
    def rank(item):
        group = item.get_closest_marker("xdist_group")  # this suite names its groups positionally
        return LONG_GROUPS.index(group.args[0]) if group and group.args[0] in LONG_GROUPS else len(LONG_GROUPS)

    items.sort(key=rank)  # stable: the file order within each rank
