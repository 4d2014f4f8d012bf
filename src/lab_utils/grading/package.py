"""The grading build of ``lab_utils``: the package without the references labs grade.

Every function marked :func:`lab_utils.graded.graded_reference` (a reference a lab asks students to
write, or a twin of one) is **deleted** from its module's source, and every module that imports a
deleted name is deleted with it (it is built on the reference: the memory calculator, for one, is a
twin of several answers), to a fixed point. Submissions are graded against this copy only
(:mod:`lab_utils.grading.sandbox` mounts nothing else of the package), so an answer that calls a
reference fails with an ``ImportError`` or ``NameError`` however it reaches for it.

:func:`check_grading_package` proves the result by grepping it for every deleted ``def`` and by
importing each remaining module from it in a fresh interpreter.
"""

from __future__ import annotations

import ast
import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import lab_utils
from lab_utils.graded import MARKER

SOURCE = Path(lab_utils.__file__).resolve().parent


@dataclass
class GradingPackage:
    root: Path                      # the folder that holds the stripped ``lab_utils/``
    removed_functions: dict[str, list[str]] = field(default_factory=dict)   # module -> names
    removed_modules: list[str] = field(default_factory=list)

    @property
    def package(self) -> Path:
        return self.root / "lab_utils"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_marker(dec: ast.expr) -> bool:
    return (isinstance(dec, ast.Name) and dec.id == MARKER) or \
        (isinstance(dec, ast.Attribute) and dec.attr == MARKER)


def _strip_marked(path: Path) -> list[str]:
    """Delete the marked functions (decorators included) from one source file; their names."""
    text = path.read_text()
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    spans, names = [], []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                and any(_is_marker(d) for d in node.decorator_list):
            spans.append((min(d.lineno for d in node.decorator_list) - 1, node.end_lineno))
            names.append(node.name)
    for begin, end in sorted(spans, reverse=True):
        del lines[begin:end]
    if names:
        path.write_text("".join(lines))
    return names


def _imports(path: Path, module: str) -> list[tuple[str, list[str]]]:
    """(imported module, names) for every import in a file, relative imports resolved."""
    out = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            out.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def _cascade(files: dict[str, Path], removed: dict[str, list[str]]) -> list[str]:
    """Delete, to a fixed point, the modules that import a deleted function or a deleted module."""
    gone: list[str] = []
    changed = True
    while changed:
        changed = False
        for module, path in list(files.items()):
            for target, names in _imports(path, module):
                hit = target in gone or any(n in removed.get(target, ()) or f"{target}.{n}" in gone
                                            for n in names)
                if hit:
                    path.unlink()
                    del files[module]
                    gone.append(module)
                    changed = True
                    break
    return sorted(gone)


def grading_package(dest: str | Path, source: str | Path = SOURCE) -> GradingPackage:
    """Copy ``lab_utils`` from ``source`` into ``dest/lab_utils`` without its graded references."""
    dest = Path(dest)
    shutil.rmtree(dest / "lab_utils", ignore_errors=True)
    shutil.copytree(source, dest / "lab_utils", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    files = {_module_name(p, dest): p for p in sorted((dest / "lab_utils").rglob("*.py"))}
    removed = {}
    for module, path in files.items():
        names = _strip_marked(path)
        if names:
            removed[module] = names
    result = GradingPackage(dest, removed)
    result.removed_modules = _cascade(files, removed)
    return result


def source_digest(source: str | Path = SOURCE) -> str:
    """A hash of the package's sources: a grading build is reused while it matches."""
    h = hashlib.sha256()
    for p in sorted(Path(source).rglob("*.py")):
        h.update(str(p.relative_to(source)).encode() + p.read_bytes())
    return h.hexdigest()[:16]


def check_grading_package(pkg: GradingPackage, import_modules: bool = True) -> list[str]:
    """Problems with a grading build (empty when it is sound): a deleted ``def`` still in its text,
    or — importing each module from the build in a fresh interpreter — a module that fails to import,
    comes from elsewhere, or still has a deleted function."""
    problems = []
    names = sorted({n for ns in pkg.removed_functions.values() for n in ns})
    for path in pkg.package.rglob("*.py"):
        text = path.read_text()
        problems += [f"{path.relative_to(pkg.root)} still defines {n}" for n in names
                     if f"def {n}(" in text or f"class {n}(" in text]
    if not import_modules:
        return problems
    modules = sorted(_module_name(p, pkg.root) for p in pkg.package.rglob("*.py"))
    script = (
        "import importlib, json, sys\n"
        f"root, removed, modules = {str(pkg.root)!r}, {pkg.removed_functions!r}, {modules!r}\n"
        "bad = []\n"
        "for m in modules:\n"
        "    try:\n"
        "        mod = importlib.import_module(m)\n"
        "    except Exception as e:\n"
        "        bad.append(f'{m} does not import: {type(e).__name__}: {e}'); continue\n"
        "    if not mod.__file__.startswith(root):\n"
        "        bad.append(f'{m} was imported from {mod.__file__}, not the grading build')\n"
        "    bad += [f'{m} still has {n}' for n in removed.get(m, []) if hasattr(mod, n)]\n"
        "print(json.dumps(bad))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=pkg.root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(pkg.root), "PATH": "/usr/bin:/bin", "MPLBACKEND": "agg"},
                          timeout=600)
    if proc.returncode != 0:
        return problems + [f"importing the grading build failed: {proc.stderr[-2000:]}"]
    import json

    return problems + json.loads(proc.stdout.strip().splitlines()[-1])
