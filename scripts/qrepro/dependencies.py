"""Which library files a rule script uses, read from its imports with ast (nothing is imported, so no torch at
parse time). Snakefile declares them as the rule's inputs: editing a module re-runs exactly the rules whose
scripts import it, directly or through other modules.

A module that reads a workflow file at run time names it in a module-level ``WORKFLOW_FILES = (...)`` literal;
those files count as its dependencies too."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "qrepro"


def _module_path(scripts_dir: Path, dotted: str) -> Path | None:
    """The file of a module or package under scripts_dir, or None (a name imported from a module, or not ours)."""
    base = scripts_dir.joinpath(*dotted.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imported_modules(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Dotted names of everything this module imports (absolute or relative), candidates for being modules."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


def _workflow_files(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "WORKFLOW_FILES"
                                                for t in node.targets):
            return list(ast.literal_eval(node.value))
    return []


def library_files(script: str | Path, scripts_dir: str | Path, root: str | Path = ".") -> list[str]:
    """Every library file the script needs, transitively, relative to root: the modules it imports, the
    __init__.py of each package on their path, and the files those modules declare in WORKFLOW_FILES."""
    scripts_dir, root = Path(scripts_dir).resolve(), Path(root).resolve()
    needed: set[Path] = set()
    files: set[str] = set()
    todo = [(Path(script).resolve(), None)]
    while todo:
        path, module = todo.pop()
        tree = ast.parse(path.read_text(), filename=str(path))
        files |= set(_workflow_files(tree))
        for dotted in _imported_modules(tree, module or "", path.name == "__init__.py"):
            parts = dotted.split(".")
            for depth in range(1, len(parts) + 1):  # the package __init__s on the way, then the module itself
                found = _module_path(scripts_dir, ".".join(parts[:depth]))
                if found is not None and found not in needed:
                    needed.add(found)
                    todo.append((found, ".".join(parts[:depth])))
    return sorted({str(p.relative_to(root)) for p in needed} | files)
