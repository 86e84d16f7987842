import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qrepro.config_checks import merged_profile  # noqa: E402
from qrepro.paper import load_paper_values  # noqa: E402

# The paper's numbers, by id (paper/paper_values.yaml): tests read them here, never write one down again.
PAPER = {key: entry["value"] for key, entry in load_paper_values(ROOT / "paper/paper_values.yaml").items()}
# the seven projections the paper puts LoRA on, as configs/paper.yaml (over config.yaml) sets them
LORA_TARGETS = tuple(merged_profile(ROOT / "config.yaml", ROOT / "configs/paper.yaml")["training"]["qlora"]["lora"][
    "target_modules"])

# What a clean checkout holds: generated outputs and caches are left behind.
_SKIP = {".git", "results", ".snakemake", "__pycache__", ".pytest_cache", ".venv", ".whl", ".gl"}


def _IGNORE(directory, names):
    skipped = {n for n in names if n in _SKIP}
    if Path(directory).resolve() == ROOT / "report":
        skipped |= {n for n in names if n != "README.md"}
    return skipped


def copy_workflow(dest: Path) -> Path:
    shutil.copytree(ROOT, dest, ignore=_IGNORE, dirs_exist_ok=True)
    return dest


# what Snakemake may do in a fast test (-m "not slow"): plan, lint or parse, never run a job
PLANNING_ONLY = {"-n", "--dry-run", "--dryrun", "--lint", "--list-rules", "--list", "--summary", "--detailed-summary",
                 "--dag", "--rulegraph"}
_SLOW_TEST = {"allowed": True}  # set per test by the guard below


class MarkItSlow(AssertionError):
    pass


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    if not _SLOW_TEST["allowed"] and not PLANNING_ONLY & set(args):
        raise MarkItSlow(f"this test runs Snakemake jobs (snakemake {' '.join(args)}): mark it "
                         "@pytest.mark.slow, or only plan (-n) in the fast tier")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    result = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.fixture(scope="session")
def test_run(tmp_path_factory):
    """The whole DAG, report included, run once on configs/test.yaml in a fresh copy of the repository."""
    workdir = copy_workflow(tmp_path_factory.mktemp("run"))
    snakemake(workdir, "--configfile", "configs/test.yaml", "--cores", "2", "report")
    return workdir


@pytest.fixture
def run_copy(test_run, tmp_path):
    """A private copy of the finished run, for tests that change files (mtimes kept, so it is up to date)."""
    dest = tmp_path / "run"
    shutil.copytree(test_run, dest, symlinks=True)
    return dest


def slurm_controller() -> str | None:
    """Why the scale-out tests cannot run here, or None when a SLURM controller answers."""
    try:
        subprocess.run(["scontrol", "ping"], check=True, capture_output=True, timeout=20)
        config = subprocess.run(["scontrol", "show", "config"], check=True, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return "no SLURM controller answers `scontrol ping`: start the local one-node cluster with `bash .ci/slurm/up.sh`"
    name = re.search(r"^ClusterName\s*=\s*(\S+)", config.stdout, re.M)
    if not name or name.group(1) != "qrepro-ci":  # the tests restart and reconfigure their cluster: never a real one
        return (f"the SLURM controller that answers is not the local test cluster (ClusterName="
                f"{name.group(1) if name else '?'}); the scale-out tests run on the one `bash .ci/slurm/up.sh` starts")
    return None


@pytest.fixture(scope="session")
def cluster_run(tmp_path_factory):
    """The test profile's html target through the local SLURM cluster, from a fresh copy (tests/slurm_cluster.py)."""
    from slurm_cluster import run_test_profile
    return run_test_profile(copy_workflow(tmp_path_factory.mktemp("cluster") / "run"))


@pytest.fixture(scope="session")
def second_clean_run(request, tmp_path_factory):
    """A second clean run of the test profile, from a fresh copy, to compare with test_run: the scale-out tests' run
    through SLURM when the local cluster answers (one whole DAG serves both), else a local run of the same html
    target. (So with the cluster up, `-m "not scaleout"` still submits this run to it.)"""
    if slurm_controller() is None:
        return request.getfixturevalue("cluster_run")["dir"]
    workdir = copy_workflow(tmp_path_factory.mktemp("second") / "run")
    snakemake(workdir, "--configfile", "configs/test.yaml", "--cores", "2", "html")
    return workdir


# fixtures that build a whole DAG: a test that uses one (directly or through another fixture) is slow whether or not
# it says so; so is a test that needs the cluster (scaleout)
WHOLE_RUN_FIXTURES = {"test_run", "run_copy", "cluster_run", "second_clean_run"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if WHOLE_RUN_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("scaleout"):
            item.add_marker(pytest.mark.slow)
    scaleout = [item for item in items if item.get_closest_marker("scaleout")]
    reason = slurm_controller() if scaleout else None
    for item in scaleout if reason else []:
        item.add_marker(pytest.mark.skip(reason=reason))


def pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="session")
def hf_cache(tmp_path_factory):
    """The offline Hugging Face cache of tests/hub_cache.py: the paper profile's hub path without the hub."""
    from hub_cache import build_hf_cache
    return build_hf_cache(tmp_path_factory.mktemp("hf_home"))


@pytest.fixture(autouse=True)
def _fast_tests_run_no_snakemake_jobs(request):
    """A test not marked slow that runs Snakemake jobs fails (MarkItSlow): the fast tier cannot silently grow a DAG."""
    _SLOW_TEST["allowed"] = request.node.get_closest_marker("slow") is not None
    yield
    _SLOW_TEST["allowed"] = True
