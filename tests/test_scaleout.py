"""The workflow through a real SLURM cluster: the one-node cluster of .ci/slurm/up.sh (skipped without one), with
profiles/slurm and the CI overlay profiles/slurm-ci, exactly as README "On a cluster" says.

The test profile's whole `html` DAG runs through `--executor slurm` once (conftest's cluster_run, on the cluster's
fake GPUs and with gpus: 1, the paper profile's setting), so every job's sbatch line shows what a GPU site would be
asked for. That run is also the second clean run that tests/test_integrity.py compares with the local one, byte for
byte."""
import re
import shutil
import time
from pathlib import Path

import pytest

from conftest import copy_workflow, snakemake
from qrepro.metrics_io import read_metric
from slurm_cluster import PROFILES, cluster, rules_of, sacct

pytestmark = pytest.mark.scaleout


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
