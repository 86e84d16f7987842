"""Each rule's library inputs come from its script's imports, and editing a module reruns exactly the rules that import it."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, snakemake
from qrepro.dependencies import library_files


def _runtime_imports(module):
    """The qrepro modules Python itself loads when importing module (top-level imports only)."""
    code = (f"import sys; import {module}; "
            "print('\\n'.join(sorted(m.__file__ for n, m in sys.modules.items() if n.split('.')[0] == 'qrepro')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {str(Path(f).relative_to(ROOT)) for f in out.split()}


@pytest.mark.parametrize("module", ["qrepro.catalogue", "qrepro.report.claims", "qrepro.report.tables",
                                    "qrepro.evaluation.records", "qrepro.data.checks"])
def test_library_inputs_cover_every_module_python_loads(module, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(f"import {module}\n")
    declared = set(library_files(script, ROOT / "scripts", ROOT))
    assert _runtime_imports(module) <= declared
    assert "schemas/metric.schema.json" in declared or "metrics_io" not in " ".join(declared)


def test_library_inputs_follow_relative_function_level_and_module_imports(tmp_path):
    pkg = tmp_path / "scripts/qrepro"
    (pkg / "sub").mkdir(parents=True)
    for name, text in {"__init__.py": "", "a.py": "from .sub import b\n", "sub/__init__.py": "",
                       "sub/b.py": "def f():\n    from qrepro import c\n", "c.py": "WORKFLOW_FILES = ('data/x.yaml',)\n",
                       "unused.py": ""}.items():
        (pkg / name).write_text(text)
    script = tmp_path / "scripts/job.py"
    script.write_text("import json\nfrom qrepro.a import something\n")
    assert library_files(script, tmp_path / "scripts", tmp_path) == [
        "data/x.yaml", "scripts/qrepro/__init__.py", "scripts/qrepro/a.py", "scripts/qrepro/c.py",
        "scripts/qrepro/sub/__init__.py", "scripts/qrepro/sub/b.py"]


def test_editing_a_module_reruns_exactly_the_rules_that_import_it(run_copy):
    # hand-listed from the scripts' imports: numbers is used by the tables and by the report's claims/context
    expected = {"qrepro/report/numbers.py": {"tables", "render", "manifest", "pdf", "report"},
                "qrepro/derived.py": {"comparisons", "architecture_comparisons", "mfu", "figure1", "figure2",
                                                     "tables", "manifest", "render", "pdf", "report"}}
    for module, rules in expected.items():
        path = run_copy / "scripts" / module
        original, stat = path.read_text(), path.stat()
        path.write_text(original + "\n# edited\n")
        planned = snakemake(run_copy, "--configfile", "configs/test.yaml", "-n", "report").stdout
        path.write_text(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert set(re.findall(r"^(?:local)?rule (\w+):$", planned, flags=re.M)) == rules, module
