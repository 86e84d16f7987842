"""The library's layers import one way (shared <- data <- model <- training <- evaluation <- report), the workflow
parses with the shared layer alone and runs no program while it does, and nothing patches the import path."""
import ast
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "scripts/qrepro"
ORDER = ["shared", "data", "model", "training", "evaluation", "report"]


def _layer(module: str) -> str:
    """qrepro.<stage>.x belongs to its stage; a top-level module (qrepro.catalogue, ...) to the shared layer."""
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in ORDER else "shared"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every qrepro module a file imports, at any depth (function-level imports included), with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = _modules()
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.append((full if full in modules else node.module, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] == "qrepro"]


def test_no_module_imports_a_later_stage():
    wrong = []
    for module, path in _modules().items():
        rank = ORDER.index(_layer(module))
        for imported, line in _imports(path):
            if ORDER.index(_layer(imported)) > rank:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({_layer(module)}) imports {imported} ({_layer(imported)})")
    assert not wrong, "\n".join(wrong)


def _import_graph() -> dict[str, set[str]]:
    """module -> the qrepro modules it imports (at any depth), each named as a module of the package."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        found = set()
        for imported, _ in _imports(path):
            while imported not in modules and "." in imported:  # qrepro.x.name -> qrepro.x
                imported = imported.rsplit(".", 1)[0]
            if imported in modules and imported != module and not modules[imported].name == "__init__.py":
                found.add(imported)
        graph[module] = found
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle: a module that reaches itself again through what it imports."""
    found = []
    for start in graph:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    found.append(path + [start])
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    return found


def test_no_import_circle_within_a_layer():
    circles = _circles(_import_graph())
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


def test_the_circle_check_sees_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"], ["b", "c", "a", "b"],
                                                                          ["c", "a", "b", "c"]]


def test_the_layer_check_sees_a_backward_import(tmp_path):
    """The walk above would catch the kind of import it guards against (model importing training)."""
    path = tmp_path / "base.py"
    path.write_text("def f():\n    from qrepro.training.trainer import train\n    from qrepro import training\n")
    assert [_layer(name) for name, _ in _imports(path)] == ["training", "training"]
    assert ORDER.index("training") > ORDER.index(_layer("qrepro.model.base"))


def test_the_catalogue_and_the_workflow_import_only_the_shared_layer():
    code = ("import sys, qrepro.catalogue, qrepro.profile, qrepro.config_checks, qrepro.dependencies, qrepro.paper, "
            "qrepro.runlog; qrepro.catalogue.load('paper/metrics.yaml'); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('qrepro', 'torch', 'transformers')))))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    assert loaded and all(m.startswith("qrepro") and _layer(m) == "shared" for m in loaded), loaded
    common = (ROOT / "rules/common.smk").read_text()
    imported = re.findall(r"^from (qrepro[\w.]*) import|^import (qrepro[\w.]*)", common, flags=re.M)
    assert imported and all(_layer(a or b) == "shared" for a, b in imported)


def test_parsing_the_workflow_runs_no_program(tmp_path):
    """git and nvidia-smi are run by the jobs that record them (render, write_reference), never while Snakemake
    parses: a dry run with both replaced by programs that leave a mark must leave none."""
    marks = tmp_path / "ran"
    for name in ("git", "nvidia-smi"):
        fake = tmp_path / "bin" / name
        fake.parent.mkdir(exist_ok=True)
        fake.write_text(f"#!/bin/sh\necho {name} >> {marks}\nexit 1\n")
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", HF_HUB_OFFLINE="1")
    subprocess.run([sys.executable, "-m", "snakemake", "report", "-n", "--configfile", "configs/test.yaml"], cwd=ROOT,
                   env=env, check=True, capture_output=True)
    assert not marks.exists(), marks.read_text()


def test_nothing_patches_the_import_path():
    """scripts/, bench/ and tests/ import the installed package (pip install -e .): no sys.path edits, no PYTHONPATH."""
    offenders = [str(p.relative_to(ROOT)) for folder in ("scripts", "bench", "tests", "rules")
                 for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".smk") and p.name != Path(__file__).name
                 and re.search(r"sys\.path\.(insert|append)|PYTHONPATH", p.read_text())]
    assert not offenders
    assert (ROOT / "pyproject.toml").exists()
    import qrepro
    assert Path(qrepro.__file__).resolve().is_relative_to(ROOT / "scripts")


def test_library_modules_are_imported_under_their_own_names():
    """No `import ... as` of a qrepro module: a module is called what it is."""
    renamed = []
    for path in [*ROOT.glob("scripts/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py"),
                 *ROOT.glob("rules/*.smk")]:
        source = path.read_text()
        if path.suffix == ".smk":  # its Python import lines
            source = "\n".join(line for line in source.splitlines() if line.startswith(("import ", "from ")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = getattr(node, "module", None) or ""
                for alias in node.names:
                    if alias.asname and (module.startswith("qrepro") or alias.name.startswith("qrepro")):
                        renamed.append(f"{path.relative_to(ROOT)}:{node.lineno} {alias.name} as {alias.asname}")
    assert not renamed, renamed


# Rule scripts that touch no model: importing what they import must not load torch (about 3 s per job, and up to
# 10 s with transformers' Trainer; see docs/performance.md).
NO_MODEL_SCRIPTS = ["compare.py", "compile_pdf.py", "dataset_metrics.py", "make_tables.py", "metric_reference.py",
                    "mfu.py", "plot_figure1.py", "plot_figure2.py", "render_report.py", "write_manifest.py",
                    "write_reference.py", "sweep_summary.py", "sweep_report.py"]


def test_jobs_that_need_no_model_import_no_torch():
    for name in NO_MODEL_SCRIPTS:
        tree = ast.parse((ROOT / "scripts" / name).read_text())
        modules = sorted({node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
                         | {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names})
        code = (f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
                "print(sorted(m for m in ('torch', 'transformers', 'peft', 'bitsandbytes') if m in sys.modules))")
        loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        assert loaded.stdout.strip() == "[]", (name, loaded.stdout)
