"""What a job records about the run it is part of: its log file, whether it ran alone, the package versions, the
git commit and the GPU. Shared layer; no torch. Jobs call these when they run, never the workflow while it parses."""
from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import subprocess
import sys
from pathlib import Path

from qrepro import cluster

# the packages whose versions a run's numbers depend on (checkpoint fingerprints, reference provenance)
RUN_PACKAGES = ["torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets", "snakemake"]


@contextlib.contextmanager
def log_to(path: str):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as handle, contextlib.redirect_stdout(handle), \
            contextlib.redirect_stderr(handle):
        logging.basicConfig(stream=handle, level=logging.INFO, force=True,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
        try:
            yield
        except BaseException:
            import traceback
            traceback.print_exc(file=handle)
            # Snakemake shows stderr of a failed job; repeat the reason there, not only in the log.
            print(f"failed, see {path}: {sys.exc_info()[1]}", file=sys.__stderr__)
            raise


def alone_evidence(reserved_threads: int, scheduler_cores: int) -> dict:
    """Whether a timed job ran alone, and why. Call it after the timed work.

    Snakemake's local executor: the rule reserves every core Snakemake was given (threads = --cores), so the
    scheduler can start no other job beside it. A cluster executor (scheduler_cores 0) places jobs itself: inside a
    SLURM allocation the answer comes from SLURM (cluster.slurm_alone_evidence: sacct, every user's jobs on the
    node between this job's start and now); elsewhere it is unknown and the job is not claimed to have run alone."""
    if not scheduler_cores:
        job_id = cluster.slurm_job_id()
        if job_id:
            return {"reserved_cores": reserved_threads, "scheduler_cores": None,
                    **cluster.slurm_alone_evidence(job_id)}
        return {"ran_alone": False, "reserved_cores": reserved_threads, "scheduler_cores": None,
                "how": "not checked: a cluster executor ran this job outside SLURM; whether others shared its node "
                       "is unknown"}
    if reserved_threads < scheduler_cores:
        raise RuntimeError(f"a timed job must run alone: it holds {reserved_threads} of the {scheduler_cores} cores "
                           "Snakemake was given, so other jobs could run beside it")
    return {"ran_alone": True, "reserved_cores": reserved_threads, "scheduler_cores": scheduler_cores,
            "how": "the rule reserves threads = every core given to Snakemake (--cores), so no other job of this "
                   "workflow ran at the same time"}


def package_versions(names=RUN_PACKAGES) -> list[list[str]]:
    versions = []
    for name in names:
        try:
            versions.append([name, importlib.metadata.version(name)])
        except importlib.metadata.PackageNotFoundError:
            versions.append([name, "not installed"])
    return versions


def nvidia_smi(field: str) -> str | None:
    """One field of the first GPU from nvidia-smi (name, driver_version, ...); None without one."""
    try:
        result = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"], capture_output=True,
                                text=True, check=True)
        return result.stdout.strip().splitlines()[0].strip()
    except (OSError, subprocess.CalledProcessError, IndexError):
        return None


def git_commit(repository: str | Path = ".") -> str:
    """The commit a result is built from, with -dirty when tracked files differ; 'unknown' outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repository, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repository,
                               capture_output=True, text=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
