"""The layering rules, checked over every module of the package (not a hand-kept list):

- the core never imports a shell (cli, tui, the pytest plugin) nor a shell library (typer,
  rich, textual), at the top of a module or inside a function;
- the TUI never imports the CLI (what both show lives in views/, below both);
- the import graph between modules has no circle.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import hookinspect

PACKAGE = Path(hookinspect.__file__).parent
SHELLS = ("hookinspect.cli", "hookinspect.tui", "hookinspect.web", "hookinspect.pytest_plugin", "hookinspect.__main__")
SHELL_LIBRARIES = ("typer", "rich", "textual")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_shell(module: str) -> bool:
    return any(module == shell or module.startswith(shell + ".") for shell in SHELLS)


def imports_of(module: str) -> set[str]:
    """Every module it imports, anywhere in the file (a lazy import is an arrow too)."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    return found


def internal_imports(module: str) -> set[str]:
    return {name for name in imports_of(module) if name in MODULES and name != module}


CORE = sorted(name for name in MODULES if not is_shell(name))


def test_the_walk_finds_the_core_and_the_shells():
    assert {"hookinspect.workspace", "hookinspect.recorder", "hookinspect.views.delivery"} <= set(CORE)
    assert "hookinspect.cli.listen" in MODULES and "hookinspect.tui.app" in MODULES


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_shell_and_no_shell_library(module):
    wrong = sorted(name for name in imports_of(module)
                   if is_shell(name) or name.split(".")[0] in SHELL_LIBRARIES)
    assert not wrong, f"{module} imports {wrong}"


def test_the_tui_never_imports_the_cli():
    wrong = {module: sorted(n for n in internal_imports(module) if n.startswith("hookinspect.cli"))
             for module in MODULES if module.startswith("hookinspect.tui")}
    assert not any(wrong.values()), wrong


def test_the_import_graph_has_no_circle():
    graph = {module: internal_imports(module) for module in MODULES}
    # A package's __init__ is imported with each of its modules; it imports none of them here.
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for nxt in sorted(graph[module]):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


@pytest.mark.parametrize("module", [m for m in CORE if m != "hookinspect.__init__"])
def test_importing_a_core_module_loads_no_shell_library(module):
    code = (f"import sys, {module}; bad = [m for m in {SHELL_LIBRARIES!r} if m in sys.modules]; "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"{module} imports {result.stdout.strip() or result.stderr.strip()}"


def test_all_sql_lives_in_the_stores():
    """SQL is written in store/ (and the relay's own storages), nowhere else."""
    import re

    sql = re.compile(r"""execute(?:many)?\(\s*f?["'](?:SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA)""")
    found = [name for name, path in MODULES.items()
             if not name.startswith(("hookinspect.store", "hookinspect.relay.storage", "hookinspect.relay.redis_storage"))
             and sql.search(path.read_text())]
    assert found == []
