"""The house rules of docs/architecture.md, read off the source: imports run one way (no cycle, imports
inside functions counted; a room imports only rooms on its floor or below), nothing below the
command line imports it, nothing in the package imports the bench, the oracle (bench/official*.py)
imports nothing of the code it checks, and no function is longer than 80 lines."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "tfvaegan"
# docs/architecture.md, "Rooms": the higher the floor, the more it may import.
FLOORS = {"cli": 5, "__main__": 5, "bench": 5, "stages": 4, "protocols": 4, "artifacts": 4, "search": 4, "method": 3,
          "features": 3, "report": 3, "data": 2, "catalog": 2,
          "config": 1, "record": 1, "errors": 1, "device": 1, "fileio": 1, "gpu_slots": 1}
LONGEST_FUNCTION = 80


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The package modules `name` imports, anywhere in its source."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            base = node.module if node.level == 0 else ".".join(name.split(".")[: -node.level] + [node.module])
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target not in (name, "tfvaegan"):
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _room(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_every_module_has_a_floor():
    rooms = {_room(m) for m in MODULES if m != "tfvaegan"}
    assert rooms <= set(FLOORS), f"rooms without a floor in docs/architecture.md: {sorted(rooms - set(FLOORS))}"


def test_imports_run_downwards_and_form_no_cycle():
    upward = [(a, b) for a, targets in GRAPH.items() for b in targets
              if a != "tfvaegan" and FLOORS[_room(a)] < FLOORS[_room(b)]]
    assert not upward, f"imports from a lower floor to a higher one: {upward}"
    # depth-first search for a cycle (imports within one floor are allowed, circles are not)
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH.get(module, ())):
            if state.get(target) == 1:
                pytest.fail(f"import cycle: {' -> '.join(trail[trail.index(target):] + [target])}")
            if target not in state:
                visit(target, trail + [target])
        state[module] = 2

    for module in GRAPH:
        if module not in state:
            visit(module, [module])


def test_only_the_entry_points_import_the_cli_and_nothing_imports_the_bench():
    cli_users = sorted(m for m, targets in GRAPH.items() if "tfvaegan.cli" in targets and _room(m) != "__main__")
    assert cli_users == []
    bench_users = sorted(m for m, targets in GRAPH.items()
                         if any(t.startswith("tfvaegan.bench") for t in targets) and _room(m) != "bench")
    assert bench_users == [], "the official transcription and the bench stay beside the package"


ORACLE = sorted(name for name in MODULES if re.fullmatch(r"tfvaegan\.bench\.official\w*", name))


def _outside_imports(path: Path) -> set[str]:
    """The top-level names of the modules outside the package that `path` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            found.add(node.module.split(".")[0])
    return found - {"tfvaegan"}


def test_the_oracle_imports_nothing_of_the_code_it_checks():
    """bench/official*.py transcribe the official (and the lineage's reference) code: a test comparing
    the package with them compares two independent computations only while they import nothing of the
    package (method, data, stages, protocols, config, ...), the stdlib, torch and each other aside."""
    lineage = ["tfvaegan.bench.official_fclswgan", "tfvaegan.bench.official_free"]  # f-CLSWGAN's, FREE's
    assert set(ORACLE) <= {"tfvaegan.bench.official", "tfvaegan.bench.official_transductive", *lineage}
    assert {"tfvaegan.bench.official", "tfvaegan.bench.official_transductive"} <= set(ORACLE)
    package = {name: sorted(GRAPH[name]) for name in ORACLE}
    assert package == {"tfvaegan.bench.official": [],
                       "tfvaegan.bench.official_transductive": ["tfvaegan.bench.official"],
                       **{name: [] for name in lineage if name in ORACLE}}
    outside = {name: sorted(_outside_imports(MODULES[name]) - set(sys.stdlib_module_names)) for name in ORACLE}
    assert outside == {name: ["torch"] for name in ORACLE}


def test_no_function_is_longer_than_80_lines():
    long = [f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in MODULES.values() for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > LONGEST_FUNCTION]
    assert long == []


def test_the_checks_see_the_imports_they_are_meant_to():
    """The graph holds what the source says (so that the rules above are not passed vacuously)."""
    assert "tfvaegan.method.classifier" in GRAPH["tfvaegan.method.evaluate"]
    assert "tfvaegan.stages" in GRAPH["tfvaegan.cli"]
    assert "tfvaegan.data.layout" in GRAPH["tfvaegan.data.validate"]
    assert "tfvaegan.method.train" in GRAPH["tfvaegan.bench.timing"]  # the bench beside the oracle does import it
    assert len(MODULES) > 30


def test_the_run_records_vocabulary_is_defined_once():
    """tfvaegan/record.py owns the headline metric names, the percent format and the progress line: no other
    module spells the names out as a list or defines its own percent or log function (the bench's oracle
    transcriptions stay independent of the package and are not counted)."""
    names = re.compile(r"""["']zsl_acc["'],\s*["']gzsl_seen["'],\s*["']gzsl_unseen["'],\s*["']gzsl_h["']""")
    defined = re.compile(r"^\s*def _?(percent|log)\(", re.M)
    owners = {"names": [], "functions": []}
    for name, path in MODULES.items():
        if _room(name) == "bench":
            continue
        text = path.read_text()
        owners["names"] += [name] * len(names.findall(text))
        owners["functions"] += [f"{name}.{found}" for found in defined.findall(text)]
    assert owners["names"] == ["tfvaegan.record"]
    assert sorted(owners["functions"]) == ["tfvaegan.record.log", "tfvaegan.record.percent"]


def test_the_protocols_runs_are_defined_once():
    """protocols.py carries out both protocols (training run, final evaluation, notes); stages.py only calls it,
    and the selection arithmetic is method/selection.py's."""
    stages = (PACKAGE / "stages.py").read_text()
    assert 'cfg.protocol == "paper"' not in stages and "protocol ==" not in stages
    assert "protocols.train_under_protocol(" in stages and "protocols.final_evaluation(" in stages
    defined = {name: [m for m, path in MODULES.items()
                      if re.search(rf"^def {name}\(", path.read_text(), re.M)]
               for name in ("train_under_protocol", "choose_on_validation", "final_evaluation", "setting_notes",
                            "paper_selection", "val_selection", "final_classifier_epochs")}
    assert defined == {**{name: ["tfvaegan.protocols"] for name in ("train_under_protocol", "choose_on_validation",
                                                                     "final_evaluation", "setting_notes")},
                       **{name: ["tfvaegan.method.selection"] for name in ("paper_selection", "val_selection",
                                                                            "final_classifier_epochs")}}
