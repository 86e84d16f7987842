"""A job a cluster executor started checks the device on its own node."""
import os


from conftest import copy_workflow, snakemake


def test_a_cluster_job_checks_the_device_on_its_node(tmp_path):
    """A job a cluster executor starts parses the workflow in remote mode and runs no onstart: its device checks run
    at parse time, for its own rules. The paper profile (allow_cpu: false, fp16) on this GPU-less machine: a training
    job stops and names the host; a job without the gpu resource (the comparisons) goes ahead."""
    from qrepro.cluster import target_rules
    assert target_rules(["snakemake", "--target-jobs", "'finetune:variant=full'", "'render:'", "--cores", "all"]) == {
        "finetune", "render"}
    assert target_rules(["snakemake", "--target-jobs=tables:", "--nolock"]) == {"tables"}
    workdir = copy_workflow(tmp_path / "run")
    refused = snakemake(workdir, "--mode", "remote", "--target-jobs", "finetune:variant=full", "--configfile",
                        "configs/paper.yaml", "--cores", "1", "-n", check=False)
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert f"Job finetune on host {os.uname().nodename}" in said
    assert "allow_cpu=false (this profile is meant for a CUDA GPU) and no CUDA device is visible" in said
    allowed = snakemake(workdir, "--mode", "remote", "--target-jobs", "comparisons:", "--configfile",
                        "configs/paper.yaml", "--cores", "1", "-n", check=False)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "cannot run here" not in allowed.stdout + allowed.stderr
