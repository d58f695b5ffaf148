"""errors.py's drawn tree is the exception hierarchy exactly, and every ``LiteshipError`` subclass of the
package is defined in errors.py (so it is in the drawing). The scan of the other modules is of the source
(AST): no module needs importing, TensorFlow and torch included."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import liteship.errors as errors
from liteship.errors import LiteshipError

SRC = Path(errors.__file__).resolve().parent


def _drawn_tree() -> dict[str, str | None]:
    """``{name: parent}`` of the docstring's drawing (the root's parent is None)."""
    parents: dict[str, str | None] = {}
    trail: list[str] = []  # the names on the path to the current line, by depth
    for line in (errors.__doc__ or "").splitlines():
        m = re.match(r"^    ((?:[│ ]   )*)(?:[├└]── )?([A-Z]\w+)(?:\s|$)", line)
        if not m or (not trail and m.group(2) != "LiteshipError"):
            continue
        depth = len(m.group(1)) // 4 + (1 if "── " in line else 0)
        del trail[depth:]
        parents[m.group(2)] = trail[-1] if trail else None
        trail.append(m.group(2))
    return parents


def _defined() -> dict[str, str | None]:
    """``{name: parent}`` of every LiteshipError class defined in errors.py."""
    out: dict[str, str | None] = {}
    for name, value in vars(errors).items():
        if (
            isinstance(value, type)
            and issubclass(value, LiteshipError)
            and value.__module__ == errors.__name__
        ):
            out[name] = None if value is LiteshipError else value.__bases__[0].__name__
    return out


def test_the_drawn_tree_is_the_hierarchy():
    drawn, defined = _drawn_tree(), _defined()
    assert len(drawn) > 10, "the drawing was not read"
    assert drawn == defined, {
        "drawn, not defined (or another parent)": sorted(set(drawn.items()) - set(defined.items())),
        "defined, not drawn (or another parent)": sorted(set(defined.items()) - set(drawn.items())),
    }


def test_no_liteship_error_is_defined_outside_errors_py():
    tree_names = set(_defined())
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "errors.py" and path.parent == SRC:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases}
                if bases & tree_names:
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert not offenders, f"define these in liteship/errors.py and draw them in its tree: {offenders}"


def test_the_check_reads_a_nested_drawing():
    assert _drawn_tree()["AcceleratorError"] == "DelegateError"
    assert _drawn_tree()["ServerError"] == "AgentError"
