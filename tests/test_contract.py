"""The package's layout contract, checked on its source (no import of the modules needed).

* ``io/`` is the only code that touches files: no other module calls ``open``, a ``Path`` method
  that reads, writes or looks at the file system, ``os``/``shutil``/``tempfile``/``glob``
  functions that do, or the file libraries (``mrcfile``, ``starfile``, pickle, NumPy's file
  functions, matplotlib's ``savefig``, cryoSPARC's file transfers).
* No import cycle among locband's modules, counting imports inside functions too.
* The layers import downwards only: the engine nothing of locband outside itself; ``io`` no
  adapter, command or pipeline; an adapter no command and no other host's adapter.
* Imports inside functions only for optional or heavy third-party modules, each with a comment
  saying why.
* Shape: no module over 400 lines, no function over 60 (docstrings not counted), no exceptions.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "plugin" / "locband"

#: Path (and file-object) methods that read, write or look at the file system. ``replace`` is left
#: out: it is also ``str.replace``; ``os.replace`` is caught as an ``os`` function.
PATH_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes", "exists", "is_file", "is_dir",
                "is_symlink", "mkdir", "rmdir", "unlink", "touch", "stat", "lstat", "glob", "rglob", "iterdir",
                "samefile", "resolve", "chmod", "rename", "symlink_to", "hardlink_to", "readlink", "open",
                "savefig", "download_file", "upload"}
#: modules whose every function touches files (or exists only to)
FILE_MODULES = {"shutil", "tempfile", "glob", "mrcfile", "starfile", "pickle"}
#: os functions that do not touch files: the environment, this process, the CPUs, path strings
OS_PURE = {"environ", "getenv", "getpid", "getppid", "cpu_count", "sched_getaffinity", "getloadavg", "sysconf",
           "fspath", "sep", "pathsep", "path.join", "path.basename", "path.dirname", "path.splitext",
           "path.normpath", "path.isabs"}
#: json and numpy functions on files (their string and array versions are fine)
FILE_FUNCTIONS = {"json": {"load", "dump"}, "np": {"load", "save", "savez", "savez_compressed", "fromfile", "loadtxt",
                                                    "savetxt", "memmap", "genfromtxt"}}
#: third-party modules that may be imported inside a function: optional extras, or heavy ones
#: that most commands never need (the RELION hook starts once per half and iteration)
LAZY_IMPORTS = ("cryosparc", "pipeliner", "cupy", "matplotlib", "starfile")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        name = ".".join(("locband", *rel.with_suffix("").parts))
        yield name.removesuffix(".__init__"), path


@functools.cache
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` of an attribute chain on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def file_calls(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, call) of every file-system call in a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [(node.lineno, f"import {n}") for n in names if n.split(".")[0] in FILE_MODULES]
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = dotted(func) or ""
        root, _, rest = name.partition(".")
        if isinstance(func, ast.Name) and func.id == "open":
            found.append((node.lineno, "open()"))
        elif root == "os" and rest and not any(rest == p or rest.startswith(p + ".") for p in OS_PURE):
            found.append((node.lineno, name))
        elif root in FILE_MODULES or (root in FILE_FUNCTIONS and rest in FILE_FUNCTIONS[root]):
            found.append((node.lineno, name))
        elif isinstance(func, ast.Attribute) and func.attr in PATH_METHODS | {"tofile"}:
            found.append((node.lineno, f".{func.attr}()"))
    return found


@pytest.mark.parametrize(("module", "path"), [(m, p) for m, p in modules() if not m.startswith("locband.io")],
                         ids=[m for m, _ in modules() if not m.startswith("locband.io")])
def test_no_file_system_call_outside_io(module: str, path: Path) -> None:
    assert file_calls(parse(path)) == [], f"{module} touches files itself; only locband.io may"


def test_the_scan_finds_file_system_calls() -> None:
    """The scanner above is not blind: it finds each kind of call it is meant to find."""
    code = ("import shutil\nfrom pathlib import Path\nimport os, json, numpy as np\n"
            "open('x')\nPath('x').read_text()\nPath('x').exists()\nos.replace('a', 'b')\nshutil.copy('a', 'b')\n"
            "json.dump({}, f)\nnp.save('a', x)\nfig.savefig('a.png')\nos.environ.get('A')\nos.path.join('a', 'b')\n"
            "json.dumps({})\n'a'.replace('a', 'b')\n")
    found = {call for _, call in file_calls(ast.parse(code))}
    assert found == {"import shutil", "open()", ".read_text()", ".exists()", "os.replace", "shutil.copy", "json.dump",
                     "np.save", ".savefig()"}


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Imports under ``if TYPE_CHECKING:``: read by the type checker, never run."""
    blocks = [n for n in ast.walk(tree) if isinstance(n, ast.If) and dotted(n.test) in ("TYPE_CHECKING",
                                                                                        "typing.TYPE_CHECKING")]
    return {id(m) for b in blocks for m in ast.walk(b) if isinstance(m, (ast.Import, ast.ImportFrom))}


def imports(tree: ast.Module, module: str, *, package: bool) -> list[tuple[int, str, bool]]:
    """(line, imported locband module, inside a function) for every import of a locband module that runs."""
    out = []
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inner = {id(n) for f in functions for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    typing_only = _type_checking_only(tree)
    known = {m for m, _ in modules()}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package
                parts = module.split(".")[: len(module.split(".")) - node.level + (1 if package else 0)]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        out += [(node.lineno, t, id(node) in inner) for t in targets if t == "locband" or t.startswith("locband.")]
    return out


@functools.cache
def graph() -> dict[str, set[str]]:
    known = {m for m, _ in modules()}
    edges: dict[str, set[str]] = {}
    for module, path in modules():
        targets = {t for _, t, _ in imports(parse(path), module, package=path.name == "__init__.py")}
        edges[module] = {t for t in targets if t in known and t != module}
    return edges


def test_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_sees_imports_inside_functions() -> None:
    tree = ast.parse("def f():\n    from locband.report import render_report\n")
    assert imports(tree, "locband.pipeline", package=False) == [(2, "locband.report", True)]
    typing_only = ast.parse("if TYPE_CHECKING:\n    from locband.report import render_report\n")
    assert imports(typing_only, "locband.pipeline", package=False) == []


def _host(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "adapters" else None


@pytest.mark.parametrize("module", sorted(graph()))
def test_layers_import_downwards(module: str) -> None:
    targets = {t for t in graph()[module] if t != "locband"}  # the package itself: its version
    layer = module.split(".")[1] if "." in module else ""
    if layer == "engine":
        assert {t for t in targets if not t.startswith("locband.engine")} == set(), "the engine is pure"
    if layer == "io":
        upward = {t for t in targets if t.split(".")[1] in ("adapters", "commands", "cli", "pipeline", "report",
                                                              "options", "output_names", "summary", "inputs")}
        assert upward == set(), "io is below everything but the engine and the errors"
    if layer == "adapters":
        assert {t for t in targets if t.split(".")[1] in ("commands", "cli")} == set(), "adapters never import commands"
        others = {t for t in targets if _host(t) not in (None, _host(module))}
        assert others == set(), f"adapters never import each other: {module} imports {others}"


def _lazy_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return [n for f in functions for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))]


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=[m for m, _ in modules()])
def test_imports_inside_functions_are_optional_extras_with_a_reason(module: str, path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    for node in _lazy_imports(parse(path)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        assert all(n.split(".")[0] in LAZY_IMPORTS for n in names), f"{module}:{node.lineno} imports {names} late"
        around = lines[max(node.lineno - 3, 0):node.lineno]
        assert any("#" in line for line in around), f"{module}:{node.lineno}: say why the import is late"


def _length(node: ast.AST) -> int:
    """Lines of a function from its ``def`` to its end, its docstring not counted."""
    n = int(getattr(node, "end_lineno", 0) or 0) - int(getattr(node, "lineno", 0) or 0) + 1
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        n -= int(body[0].end_lineno or 0) - body[0].lineno + 1
    return n


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=[m for m, _ in modules()])
def test_modules_and_functions_stay_small(module: str, path: Path) -> None:
    n_lines = len(path.read_text(encoding="utf-8").splitlines())
    assert n_lines <= MAX_MODULE_LINES, f"{module} has {n_lines} lines"
    long = [(f.name, _length(f)) for f in ast.walk(parse(path))
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and _length(f) > MAX_FUNCTION_LINES]
    assert long == [], f"{module}: functions over {MAX_FUNCTION_LINES} lines: {long}"

