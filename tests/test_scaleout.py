"""The workflow through a real SLURM cluster: the one-node cluster of .ci/slurm/up.sh (skipped without one), with
profiles/slurm and the CI overlay profiles/slurm-ci, exactly as README "On a cluster" says.

The test profile's whole `html` DAG runs through `--executor slurm` once, on the cluster's fake GPUs and with
gpus: 1 (the paper profile's setting), so every job's sbatch line shows what a GPU site would be asked for."""
import re
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from conftest import ROOT, copy_workflow, snakemake
from qrepro.metrics_io import read_metric

pytestmark = pytest.mark.scaleout

PROFILES = ("--profile", "profiles/slurm", "--workflow-profile", "profiles/slurm-ci")
UP = ROOT / ".ci/slurm/up.sh"


def cluster(fake_gpus: int) -> None:
    """(Re)configure the local cluster: up.sh is idempotent and restarts only what changed."""
    subprocess.run(["bash", str(UP)], env={**__import__("os").environ, "FAKE_GPUS": str(fake_gpus)}, check=True,
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


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    """The test profile's html target through SLURM, on 2 fake GPUs with gpus=1."""
    cluster(fake_gpus=2)
    workdir = copy_workflow(tmp_path_factory.mktemp("cluster") / "run")
    started = datetime.now().replace(microsecond=0)
    result = snakemake(workdir, "html", *PROFILES, "--configfile", "configs/test.yaml", "--config", "gpus=1",
                       "--verbose", timeout=1500)
    run_id = re.search(r"SLURM run ID: (\S+)", result.stderr)[1]
    return {"dir": workdir, "log": result.stderr, "run_id": run_id, "started": started,
            "jobs": submitted(result.stderr)}


def test_every_job_ran_through_slurm_and_completed(cluster_run):
    jobs = cluster_run["jobs"]
    accounted = {job["JobID"]: job for job in sacct("--name", cluster_run["run_id"], "-S",
                                                    cluster_run["started"].isoformat())}
    print("\n".join(f"{j['JobID']:>6} {j['State']:<10} {j['Start']} {j['End']} {j['Comment']}"
                    for j in accounted.values()))
    assert set(accounted) == set(jobs)
    assert {job["State"] for job in accounted.values()} == {"COMPLETED"}
    # every rule of the DAG ran in one of them, except the target itself, which only gathers files (localrules)
    finished = set(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", cluster_run["log"]))
    on_cluster = set().union(*(rules_of(line) for line in jobs.values()))
    assert finished - on_cluster == {"html"} and on_cluster <= finished
    assert (cluster_run["dir"] / "report/report.html").stat().st_size > 10_000


def test_gpu_rules_ask_slurm_for_a_gpu_and_the_others_for_none(cluster_run, tmp_path):
    """The rules that declare `gpu` (config gpus=1, as in configs/paper.yaml) submit with --gpus=1, the rest
    without; the paper profile plans exactly that set of rules with gpu=1."""
    gpu_rules, cpu_rules = set(), set()
    for line in cluster_run["jobs"].values():
        (gpu_rules if "--gpus=1" in line else cpu_rules).update(rules_of(line))
        assert "--gres" not in line and "--gpus=" not in line.replace("--gpus=1", "")
    print("GPU:", sorted(gpu_rules), "\nCPU:", sorted(cpu_rules))
    example = next(line for line in cluster_run["jobs"].values() if "--comment rule_finetune" in line)
    print("sbatch line of a GPU job:", example.split(" --wrap")[0])
    assert {"base_model", "finetune", "finetune_qlora", "perplexity", "inference", "flops", "model_size",
            "device_peak"} == gpu_rules
    assert not gpu_rules & cpu_rules
    planned = snakemake(copy_workflow(tmp_path / "paper"), "-n", "html", "--configfile", "configs/paper.yaml").stdout
    paper_gpu_rules = set()
    for block in planned.split("\nrule ")[1:]:
        if re.search(r"\bgpu=1\b", block):
            paper_gpu_rules.add(block.split(":", 1)[0])
    assert paper_gpu_rules == gpu_rules


def test_non_timing_metric_files_are_identical_to_the_local_run(cluster_run, test_run):
    compared = 0
    for local in sorted((test_run / "results/metrics").rglob("*.json")):
        record = read_metric(local)
        if record["timing"]:
            continue
        remote = cluster_run["dir"] / local.relative_to(test_run)
        assert read_metric(remote) == record, local.relative_to(test_run)
        compared += 1
    print(f"{compared} non-timing metric files identical")
    assert compared > 100


def test_timed_jobs_had_their_node_to_themselves(cluster_run):
    """Each timed job's files say, from sacct, that no other job ran on its node while it did; sacct, asked here
    over the whole run, agrees."""
    everything = sacct("-a", "-S", cluster_run["started"].isoformat())
    when = {job["JobID"]: (job["Start"], job["End"]) for job in everything}
    checked = set()
    for path in (cluster_run["dir"] / "results/metrics").rglob("*.json"):
        record = read_metric(path)
        if not record["timing"] or "details" not in record:
            continue
        details = record["details"]
        if "ran_alone" not in details and "processes" not in details:
            continue  # a timing file that reads another one (MFU, a comparison) carries no job evidence of its own
        for process in details.get("processes", [details]):
            assert "slurm_job_id" in process, (path, process)  # every timed job's evidence comes from SLURM
            job = process["slurm_job_id"]
            assert process["ran_alone"] and process["other_jobs_on_node"] == [], (path, process)
            assert process["scheduler_guaranteed"] == "OverSubscribe=NO", process  # --exclusive
            start, end = when[job]
            overlapping = [other for other, (s, e) in when.items() if other != job and s < end and e > start]
            assert overlapping == [], (job, overlapping)
            checked.add(job)
    timed = {job for job, line in cluster_run["jobs"].items() if "--exclusive" in line}
    print("timed jobs, alone on their node:", sorted(checked))
    assert checked == timed and len(timed) >= 4  # finetune x2, inference (every model in one job), device_peak


def test_a_rerun_submits_nothing(cluster_run):
    result = snakemake(cluster_run["dir"], "html", *PROFILES, "--configfile", "configs/test.yaml", "--config",
                       "gpus=1")
    assert "Nothing to be done" in result.stdout + result.stderr
    assert "submitted with SLURM jobid" not in result.stderr


def test_a_failing_job_stops_the_run_and_names_its_slurm_log(cluster_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(cluster_run["dir"], workdir, symlinks=True)
    script = workdir / "scripts/render_report.py"
    script.write_text(script.read_text() + "\nraise SystemExit('planted failure for the scale-out test')\n")
    result = snakemake(workdir, "html", *PROFILES, "--configfile", "configs/test.yaml", "--config", "gpus=1",
                       check=False)
    assert result.returncode != 0
    logs = set(re.findall(r"(\S*\.snakemake/slurm_logs/\S+\.log)", result.stderr))
    assert logs, result.stderr[-3000:]
    named = [Path(log) if Path(log).is_absolute() else workdir / log for log in logs]
    assert any("planted failure for the scale-out test" in log.read_text() for log in named if log.exists())


def test_a_gpu_job_on_a_cluster_without_gpus_fails_before_submitting(tmp_path):
    workdir = copy_workflow(tmp_path / "run")
    cluster(fake_gpus=0)
    try:
        began = time.monotonic()
        result = snakemake(workdir, "html", *PROFILES, "--configfile", "configs/paper.yaml", check=False)
        elapsed = time.monotonic() - began
    finally:
        cluster(fake_gpus=2)
    assert result.returncode != 0 and elapsed < 60
    assert "asks for 1 GPU(s) and partition 'ci' has 0 per node" in result.stderr
    assert "submitted with SLURM jobid" not in result.stderr


def test_a_placeholder_account_stops_the_run_and_names_the_key(tmp_path):
    workdir = copy_workflow(tmp_path / "run")
    result = snakemake(workdir, "html", "--profile", "profiles/slurm", "--configfile", "configs/test.yaml",
                       check=False)
    assert result.returncode != 0
    assert "slurm_account is not set (every rule)" in result.stderr
    assert "default-resources: slurm_account in profiles/slurm/config.yaml" in result.stderr
    assert "submitted with SLURM jobid" not in result.stderr
