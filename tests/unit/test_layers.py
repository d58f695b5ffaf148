"""The import directions of docs/architecture.md, kept by a test: every ``liteship`` import — at module
level or inside a function — points to the same layer or one below; no module imports another module's
``_private`` name; the packages' module-level imports form no cycle. The scan is of the source (AST), so
an import hidden inside a function counts the same as one at the top."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "liteship"

# docs/architecture.md's layer table, bottom (0) to top: a package may import its own layer and the ones below.
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        ("liteship", "errors", "types", "data", "confidence", "progress", "_fs", "_quiet", "_tf"), 0
    ),
    **dict.fromkeys(("model", "runtime"), 1),
    "package": 2,
    **dict.fromkeys(("agent", "fleet"), 3),
    **dict.fromkeys(("convert", "quantize", "validate", "bench", "report"), 4),
    "pipeline": 5,
    "cli": 6,
}
# Known upward imports, each with its reason; the list only shrinks (docs/architecture.md, "Known seams").
KNOWN_UPWARD = {
    # the reference runners of conversion sources (Keras, SavedModel, PyTorch) live in runtime/reference.py
    # but recognise a PyTorch source and load it with the PyTorch frontend
    ("runtime/reference.py", "liteship.convert.sources"),
    ("runtime/reference.py", "liteship.convert.torch_source"),
    # the device agent's bench jobs time models with liteship.bench's loop (issue 12)
    ("agent/jobs.py", "liteship.bench"),
    # a profile job measures peak memory with the same helper as `liteship bench` (issue 23)
    ("agent/jobs_profile.py", "liteship.bench.memory"),
    # validation jobs are judged by liteship.validate itself, so the device figures are exactly those of
    # `liteship validate` (issue 23): the server replays the device's outputs through it, and the admin
    # client prepares the reference outputs with its comparator
    ("fleet/jobs_validate.py", "liteship.validate"),
    ("fleet/jobs_client.py", "liteship.validate.comparator"),
}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "liteship"


def _module_of(path: Path, root: Path = SRC) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(("liteship", *parts[:-1])) if parts[-1] == "__init__" else ".".join(("liteship", *parts))


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """The ids of import nodes under ``if TYPE_CHECKING:`` (annotations only: no import at run time)."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            ids |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return ids


def _imports(path: Path) -> list[tuple[str, list[str], int, bool, bool]]:
    """``(module, names, line, at module level, type-checking only)`` of every ``liteship`` import."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    top = {id(n) for n in tree.body} | {
        id(n) for stmt in tree.body if isinstance(stmt, (ast.If, ast.Try)) for n in ast.walk(stmt)
    }
    typing_only = _type_checking_nodes(tree)
    out = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").startswith("liteship")
        ):
            names = [a.name for a in node.names]
            out.append((node.module or "", names, node.lineno, id(node) in top, id(node) in typing_only))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("liteship"):
                    out.append((a.name, [], node.lineno, id(node) in top, id(node) in typing_only))
    return out


FILES = sorted(SRC.rglob("*.py"))


def upward_imports(files: list[Path] = FILES, root: Path = SRC) -> list[str]:
    found = []
    for path in files:
        here = _package(_module_of(path, root))
        rel = str(path.relative_to(root))
        for module, _, line, _, typing_only in _imports(path):
            there = _package(module)
            if LAYERS[there] > LAYERS[here] and (rel, module) not in KNOWN_UPWARD and not typing_only:
                found.append(
                    f"{rel}:{line} {here} (layer {LAYERS[here]}) imports {module} (layer {LAYERS[there]})"
                )
    return found


def test_every_package_has_a_layer():
    packages = {_package(_module_of(p)) for p in FILES}
    assert packages <= set(LAYERS), (
        f"give these a layer in docs/architecture.md and here: {packages - set(LAYERS)}"
    )


def test_no_import_points_to_a_higher_layer():
    assert not upward_imports(), "\n".join(upward_imports())


def test_the_known_upward_imports_still_exist():
    """An entry of KNOWN_UPWARD that was fixed is removed from the list (it only shrinks)."""
    seen = {(str(p.relative_to(SRC)), m) for p in FILES for m, *_ in _imports(p)}
    assert seen >= KNOWN_UPWARD, KNOWN_UPWARD - seen


def test_the_check_fails_on_an_upward_import(tmp_path):
    bad = SRC / "runtime" / "base.py"  # read only: the offending file is a copy in tmp_path
    text = (
        bad.read_text(encoding="utf-8") + "\n\ndef _late():\n    from liteship.pipeline import run_pipeline\n"
    )
    copy = tmp_path / "src" / "liteship" / "runtime" / "base.py"
    copy.parent.mkdir(parents=True)
    copy.write_text(text, encoding="utf-8")
    found = upward_imports([copy], root=tmp_path / "src" / "liteship")
    assert found == [
        f"runtime/base.py:{text.count(chr(10))} runtime (layer 1) imports liteship.pipeline (layer 5)"
    ]


def test_no_module_imports_another_modules_private_name():
    offenders = [
        f"{p.relative_to(SRC)}:{line} {module}.{name}"
        for p in FILES
        for module, names, line, _, _ in _imports(p)
        for name in names
        if name.startswith("_") and not name.startswith("__") and not (SRC / f"{name}.py").is_file()
    ]  # liteship._fs, _quiet, _tf are modules shared inside the package, not private names
    assert not offenders, offenders


def test_packages_import_each_other_without_a_cycle_at_module_level():
    graph: dict[str, set[str]] = defaultdict(set)
    for path in FILES:
        here = _package(_module_of(path))
        for module, _, _, top, typing_only in _imports(path):
            if top and not typing_only and _package(module) != here:
                graph[here].add(_package(module))

    def cycle_from(node: str, trail: list[str]) -> list[str] | None:
        if node in trail:
            return [*trail[trail.index(node) :], node]
        for nxt in sorted(graph[node]):
            found = cycle_from(nxt, [*trail, node])
            if found:
                return found
        return None

    cycles = [c for n in list(graph) if (c := cycle_from(n, []))]
    assert not cycles, " → ".join(cycles[0])


def _module_graph(files: list[Path] = FILES, root: Path = SRC) -> dict[str, set[str]]:
    """``module → modules it imports`` over every ``liteship`` import, those inside functions included
    (an import hidden in a function still makes a cycle: it only moves the failure to run time), except
    the type-checking ones and the edges of KNOWN_UPWARD. ``from package import name`` is an edge to the
    submodule ``package.name`` when there is one, else to the package."""
    modules = {_module_of(p, root) for p in files}
    graph: dict[str, set[str]] = defaultdict(set)
    for path in files:
        here, rel = _module_of(path, root), str(path.relative_to(root))
        for module, names, _, _, typing_only in _imports(path):
            if typing_only or (rel, module) in KNOWN_UPWARD:
                continue
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            if len(targets) < len(names) or not names:
                targets.append(module)
            graph[here].update(t for t in targets if t != here and t in modules)
    return graph


def module_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted, in order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_modules_import_each_other_without_a_cycle_even_inside_functions():
    """No two modules import each other, directly or around a loop, at module level or inside a function
    (fleet/storage ↔ s3, fleet/rollout ↔ groups, fleet/dashboard ↔ gallery, cli/fleet ↔ fleet_bench ↔
    fleet_jobs ↔ fleet_samples, bench/core ↔ isolated, agent/jobs ↔ jobs_validate ↔ jobs_profile were
    such loops, each hidden by an import inside a function: the shared part moved a level down)."""
    cycles = module_cycles(_module_graph())
    assert not cycles, "\n".join(" ↔ ".join(c) for c in cycles)


def test_the_cycle_check_sees_an_import_inside_a_function(tmp_path):
    root = tmp_path / "src" / "liteship"
    (root / "bench").mkdir(parents=True)
    (root / "bench" / "__init__.py").write_text("", encoding="utf-8")
    (root / "bench" / "core.py").write_text("from liteship.bench.isolated import run\n", encoding="utf-8")
    (root / "bench" / "isolated.py").write_text(
        "def run():\n    from liteship.bench import core\n", encoding="utf-8"
    )
    files = sorted(root.rglob("*.py"))
    assert module_cycles(_module_graph(files, root)) == [["liteship.bench.core", "liteship.bench.isolated"]]


# the reference runners of conversion sources (Keras, SavedModel, PyTorch) run only on the workstation
WORKSTATION_ONLY = {"runtime/reference.py"}


@pytest.mark.parametrize("side", ["runtime", "model", "package", "agent"])
def test_the_device_side_imports_no_workstation_package(side):
    """DESIGN: the device side never imports TensorFlow or torch, so it imports no package that does."""
    workstation = {"convert", "quantize", "pipeline", "cli", "_tf"}
    offenders = [
        f"{p.relative_to(SRC)}:{line} {module}"
        for p in sorted((SRC / side).rglob("*.py"))
        for module, _, line, _, typing_only in _imports(p)
        if _package(module) in workstation
        and not typing_only
        and str(p.relative_to(SRC)) not in WORKSTATION_ONLY
    ]
    assert not offenders, offenders
