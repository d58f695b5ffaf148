"""Count the ``liteship`` imports that sit inside a function (docs/architecture.md, "Known seams").

An import counts when it is an ``Import`` or ``ImportFrom`` node (absolute) of a ``liteship`` module and a
function (``def``, ``async def`` or ``lambda``) is among its ancestors; ``from liteship.x import a, b``
counts once, ``import liteship.a, liteship.b`` twice.

    python scripts/count_function_imports.py [src/liteship] [-v]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def function_imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, ast.ImportFrom):
                if child.level == 0 and (child.module or "").startswith("liteship"):
                    found.append((child.lineno, child.module or ""))
            elif in_function and isinstance(child, ast.Import):
                found.extend((child.lineno, a.name) for a in child.names if a.name.startswith("liteship"))
            walk(child, in_function or isinstance(child, FUNCTIONS))

    walk(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return found


def main(argv: list[str]) -> None:
    args = [a for a in argv if a != "-v"]
    root = Path(args[0] if args else "src/liteship")
    per_file = {p: function_imports(p) for p in sorted(root.rglob("*.py"))}
    per_file = {p: v for p, v in per_file.items() if v}
    print(f"liteship imports inside functions: {sum(map(len, per_file.values()))} in {len(per_file)} files")
    if "-v" in argv:
        for path, found in per_file.items():
            for line, module in found:
                print(f"{path.relative_to(root)}:{line} {module}")


if __name__ == "__main__":
    main(sys.argv[1:])
