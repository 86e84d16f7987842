"""The workflow on a SLURM cluster (snakemake-executor-plugin-slurm): the checks made before anything is submitted,
and what a timed job learns from SLURM about whether it had its node to itself. Shared layer; no torch.

The submitting process calls settings_problems and gpu_problems from the workflow's onstart; a timed job calls
slurm_alone_evidence (through runlog.alone_evidence) after its timed work, inside its allocation."""
from __future__ import annotations

import os
import re
import subprocess
import time
from datetime import datetime

# profiles/slurm/config.yaml ships these; a run with either left in stops before submitting anything
PLACEHOLDER_PREFIX = "SET-YOUR-"
SITE_KEYS = ("slurm_account", "slurm_partition")


def settings_problems(job_resources: dict[str, dict]) -> list[str]:
    """Placeholders left in the site keys, one message per key, naming where to set it.
    job_resources: rule name -> that job's resources (defaults and set-resources applied)."""
    found: dict[str, list[str]] = {}
    for rule, resources in job_resources.items():
        for key in SITE_KEYS:
            value = resources.get(key)
            if value is None or str(value).startswith(PLACEHOLDER_PREFIX):
                found.setdefault(key, []).append(rule)
    every = len(job_resources)
    return [f"{key} is not set ({'every rule' if len(set(rules)) == every else 'rules ' + ', '.join(sorted(set(rules)))}"
            f"): set default-resources: {key} in "
            "profiles/slurm/config.yaml to your site's value "
            + ("(sacctmgr show associations user=$USER lists your accounts)" if key == "slurm_account"
               else "(sinfo lists the partitions)")
            for key, rules in sorted(found.items())]


def exclusive_problems(timed_jobs: dict[str, str]) -> list[str]:
    """Timed rules that would share a node: their slurm_extra lacks --exclusive. timed_jobs: rule -> slurm_extra (a
    profile overlay that replaces set-resources whole drops it without a word)."""
    return [f"rule {rule} is timed and must get a node of its own: add --exclusive to its slurm_extra under "
            "set-resources (profiles/slurm/config.yaml does; an overlay's set-resources replaces that whole section)"
            for rule, extra in sorted(timed_jobs.items()) if "--exclusive" not in str(extra or "")]


def partition_gpus(partition: str, run=subprocess.run) -> int:
    """GPUs on the partition's best-equipped node, from sinfo's generic resources (%G: 'gpu:2', 'gpu:a100:4(S:0)',
    '(null)')."""
    result = run(["sinfo", "-h", "-p", partition, "-o", "%G"], capture_output=True, text=True, check=True)
    most = 0
    for line in result.stdout.split():
        for gres in line.split(","):
            match = re.match(r"gpu(?::[^:(]+)?:(\d+)", gres)
            if match:
                most = max(most, int(match.group(1)))
    return most


def gpu_problems(gpu_requests: dict[str, tuple[str, int]], run=subprocess.run) -> list[str]:
    """Jobs asking for more GPUs than their partition's nodes have. gpu_requests: rule -> (partition, GPUs)."""
    found, available = [], {}
    for rule, (partition, gpus) in sorted(gpu_requests.items()):
        if gpus <= 0:
            continue
        if partition not in available:
            available[partition] = partition_gpus(partition, run)
        if gpus > available[partition]:
            found.append(f"rule {rule} asks for {gpus} GPU(s) and partition {partition!r} has "
                         f"{available[partition]} per node (sinfo -p {partition} -o %G); pick a partition with GPUs "
                         "(default-resources: slurm_partition) or run a CPU profile (--config gpus=0 allow_cpu=True)")
    return found


def _slurm_env() -> dict:
    """ISO times from sacct whatever the user's SLURM_TIME_FORMAT says."""
    return {**os.environ, "SLURM_TIME_FORMAT": "standard"}


def _sacct(args: list[str], run) -> list[list[str]]:
    result = run(["sacct", "-n", "-P", "-X", *args], capture_output=True, text=True, check=True, env=_slurm_env())
    return [line.split("|") for line in result.stdout.splitlines() if line.strip()]


def _jobs_private(run) -> bool:
    """PrivateData=jobs: sacct shows a user only their own jobs, so it cannot tell who else used a node."""
    result = run(["scontrol", "show", "config"], capture_output=True, text=True, check=True, env=_slurm_env())
    match = re.search(r"^PrivateData\s*=\s*(\S+)", result.stdout, re.M)
    return bool(match) and "jobs" in match.group(1).split(",") and os.geteuid() != 0


def _time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # Unknown, None: still running or not started
        return None


def slurm_alone_evidence(job_id: str, run=subprocess.run, now: datetime | None = None, sleep=time.sleep) -> dict:
    """Whether another SLURM job ran on this job's node(s) between this job's start and now, according to sacct
    (every user's jobs, -a), and what the scheduler guaranteed (OverSubscribe from scontrol)."""
    now = now or datetime.now().replace(microsecond=0)
    fields = "JobIDRaw,Start,End,NodeList,State"  # JobIDRaw: an array task's own id, as SLURM_JOB_ID gives it
    own = []
    for attempt in range(5):  # slurmdbd may not have recorded a job that just started
        own = _sacct(["-j", job_id, "-o", fields], run)
        if own and _time(own[0][1]) is not None:
            break
        sleep(2 * (attempt + 1))
    if not own:
        raise RuntimeError(f"sacct knows no job {job_id} after 5 tries: is accounting (slurmdbd) enabled on this "
                           "cluster?")
    _, start_text, _, nodes, _ = own[0]
    if _jobs_private(run):
        return {"ran_alone": False, "slurm_job_id": job_id, "nodes": nodes, "other_jobs_on_node": None,
                "scheduler_guaranteed": f"OverSubscribe={_oversubscribe(job_id, run)}",
                "how": "not checked: this cluster sets PrivateData=jobs, so sacct shows no other user's jobs; whether "
                       "another job shared the node is unknown"}
    start = _time(start_text)
    others = []
    # every state: a job that ran on the node in the interval counts, whatever became of it
    window = ["-a", "-N", nodes, "-S", start_text, "-E", now.isoformat(), "-o", fields]
    for other_id, other_start, other_end, other_nodes, state in _sacct(window, run):
        if other_id == job_id:
            continue
        began, ended = _time(other_start), _time(other_end)
        if began is not None and began <= now and (ended is None or ended > start):
            others.append(f"{other_id} {state} {other_start}..{other_end} on {other_nodes}")
    shared = _oversubscribe(job_id, run)
    return {"ran_alone": not others, "slurm_job_id": job_id, "nodes": nodes, "interval": [start_text, now.isoformat()],
            "other_jobs_on_node": others, "scheduler_guaranteed": f"OverSubscribe={shared}",
            "how": f"sacct -a -N {nodes} -S {start_text} -E {now.isoformat()}: "
                   + (f"{len(others)} other job(s) ran on the node during this job" if others
                      else "no other job ran on the node during this job")
                   + f"; SLURM granted the node with OverSubscribe={shared}"}


def _oversubscribe(job_id: str, run) -> str:
    result = run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True, env=_slurm_env())
    match = re.search(r"OverSubscribe=(\S+)", result.stdout)
    return match.group(1) if match else "unknown"


def slurm_job_id() -> str | None:
    """This process's SLURM job, when it runs inside an allocation."""
    return os.environ.get("SLURM_JOB_ID")


def target_rules(argv: list[str]) -> set[str]:
    """The rules of the jobs a cluster job's own Snakemake runs: the values of its --target-jobs argument
    ("rule:wildcard=value,..." each, one or more after the flag), as Snakemake writes that command line."""
    rules, taking = set(), False
    for arg in argv:
        if arg.startswith("--"):
            taking = arg == "--target-jobs"
            if arg.startswith("--target-jobs="):
                rules.add(arg.split("=", 1)[1].strip("'\"").split(":", 1)[0])
            continue
        if taking:
            rules.add(arg.strip("'\"").split(":", 1)[0])
    return rules
