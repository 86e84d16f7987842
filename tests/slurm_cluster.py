"""The local one-node SLURM cluster (.ci/slurm/up.sh) as the tests use it: the profiles of README "On a cluster",
(re)configuring the node, and what sbatch and sacct say of a run."""
import os
import re
import subprocess
from datetime import datetime
from pathlib import Path

from conftest import ROOT, snakemake

PROFILES = ("--profile", "profiles/slurm", "--workflow-profile", "profiles/slurm-ci")
UP = ROOT / ".ci/slurm/up.sh"


def cluster(fake_gpus: int) -> None:
    """(Re)configure the local cluster: up.sh is idempotent and restarts only what changed."""
    subprocess.run(["bash", str(UP)], env={**os.environ, "FAKE_GPUS": str(fake_gpus)}, check=True,
                   capture_output=True, text=True, timeout=600)


def sacct(*args: str) -> list[dict]:
    fields = ["JobID", "JobName", "Comment", "State", "Start", "End", "NodeList"]
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-o", ",".join(fields), *args], capture_output=True, text=True,
                         check=True).stdout
    return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]


def submitted(log: str) -> dict[str, str]:
    """SLURM job id -> the sbatch line that submitted it (the plugin logs each call with --verbose), paired by the
    job's log file: --output <folder>/%j.log in the call, <folder>/<id>.log in the submission message."""
    calls = {re.search(r"--output (\S+)", line)[1]: line for line in re.findall(r"^sbatch call: (.*)$", log, re.M)}
    jobs = {}
    for job_id, log_file in re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", log):
        jobs[job_id] = calls[log_file.replace(f"/{job_id}.log", "/%j.log")]
    assert len(jobs) == len(calls), (len(jobs), len(calls))
    return jobs


def rules_of(sbatch: str) -> set[str]:
    """The rules one sbatch line runs (--target-jobs 'rule:wildcards' ...)."""
    return set(re.findall(r"'([a-z_0-9]+):[^']*'", sbatch.split("--target-jobs", 1)[1].split(" --", 1)[0]))


def run_test_profile(workdir: Path) -> dict:
    """The test profile's html target through SLURM in workdir (a fresh copy), on 2 fake GPUs with gpus=1 (the
    paper profile's setting), so every job's sbatch line shows what a GPU site would be asked for."""
    cluster(fake_gpus=2)
    started = datetime.now().replace(microsecond=0)
    result = snakemake(workdir, "html", *PROFILES, "--configfile", "configs/test.yaml", "--config", "gpus=1",
                       "--verbose", timeout=1500)
    run_id = re.search(r"SLURM run ID: (\S+)", result.stderr)[1]
    return {"dir": workdir, "log": result.stderr, "run_id": run_id, "started": started,
            "jobs": submitted(result.stderr)}
