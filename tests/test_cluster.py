"""qrepro.cluster against made-up sacct, sinfo and scontrol answers: what a timed job concludes about its node, the
GPUs a partition offers, and the settings checked before anything is submitted. No cluster needed."""
from datetime import datetime
from types import SimpleNamespace

import pytest

from qrepro import cluster

FIELDS = "JobIDRaw,Start,End,NodeList,State"


def fake_slurm(jobs: list[str], private: str = "none", oversubscribe: str = "NO", calls: list | None = None):
    """A `run` that answers sacct with the given rows (JobIDRaw|Start|End|NodeList|State; -j filters by id),
    scontrol with PrivateData and OverSubscribe; records each command."""
    def run(command, **kwargs):
        assert kwargs["env"]["SLURM_TIME_FORMAT"] == "standard"
        if calls is not None:
            calls.append(command)
        if command[0] == "sacct":
            assert "-o" in command and command[command.index("-o") + 1] == FIELDS
            rows = jobs
            if "-j" in command:
                rows = [row for row in jobs if row.split("|")[0] == command[command.index("-j") + 1]]
            return SimpleNamespace(stdout="\n".join(rows) + "\n")
        if command[:3] == ["scontrol", "show", "config"]:
            return SimpleNamespace(stdout=f"MaxJobCount = 10000\nPrivateData = {private}\n")
        if command[:3] == ["scontrol", "show", "job"]:
            return SimpleNamespace(stdout=f"JobId={command[3]} Partition=gpu OverSubscribe={oversubscribe} Nodes=n1\n")
        raise AssertionError(command)
    return run


NOW = datetime(2026, 12, 2, 10, 0, 0)
OWN = "7|2026-12-02T09:00:00|Unknown|n1|RUNNING"


def test_a_job_alone_on_its_node():
    calls = []
    evidence = cluster.slurm_alone_evidence("7", fake_slurm([OWN, "5|2026-12-02T08:00:00|2026-12-02T08:59:59|n1|COMPLETED"],
                                                             calls=calls), now=NOW)
    assert evidence["ran_alone"] and evidence["other_jobs_on_node"] == []
    assert evidence["scheduler_guaranteed"] == "OverSubscribe=NO" and evidence["nodes"] == "n1"
    window = next(c for c in calls if "-a" in c)
    assert window[window.index("-N") + 1] == "n1" and window[window.index("-S") + 1] == "2026-12-02T09:00:00"
    assert "-s" not in window  # every state counts: a job that failed on the node still shared it


@pytest.mark.parametrize("other, shared", [
    ("8|2026-12-02T09:30:00|2026-12-02T09:40:00|n1|FAILED", True),     # started and ended inside
    ("8|2026-12-02T08:30:00|2026-12-02T09:00:01|n1|COMPLETED", True),  # overlapped the start by a second
    ("8|2026-12-02T09:59:00|Unknown|n1|RUNNING", True),                # still running
    ("8|2026-12-02T08:30:00|2026-12-02T09:00:00|n1|COMPLETED", False),  # ended as this one started
    ("8|Unknown|Unknown|n1|PENDING", False),                           # never started
])
def test_another_job_in_the_interval_shares_the_node(other, shared):
    evidence = cluster.slurm_alone_evidence("7", fake_slurm([OWN, other]), now=NOW)
    assert evidence["ran_alone"] is not shared
    assert (evidence["other_jobs_on_node"] != []) is shared


def test_private_job_data_means_not_checked(monkeypatch):
    monkeypatch.setattr(cluster.os, "geteuid", lambda: 1000)
    evidence = cluster.slurm_alone_evidence("7", fake_slurm([OWN], private="jobs,usage"), now=NOW)
    assert evidence["ran_alone"] is False and evidence["other_jobs_on_node"] is None
    assert "PrivateData=jobs" in evidence["how"]
    monkeypatch.setattr(cluster.os, "geteuid", lambda: 0)  # root sees every job
    assert cluster.slurm_alone_evidence("7", fake_slurm([OWN], private="jobs"), now=NOW)["ran_alone"]


def test_a_job_sacct_has_not_recorded_yet_is_asked_again_then_refused():
    waits = []
    with pytest.raises(RuntimeError, match="sacct knows no job 9 after 5 tries"):
        cluster.slurm_alone_evidence("9", fake_slurm([OWN]), now=NOW, sleep=waits.append)
    assert waits == [2, 4, 6, 8, 10]


@pytest.mark.parametrize("gres, gpus", [
    ("gpu:2", 2), ("gpu:a100:4(S:0-1)", 4), ("gpu:a100:4(S:0-1),gpu:t4:1", 4), ("mps:100,gpu:3", 3), ("(null)", 0),
    ("gpu:1\ngpu:8", 8),
])
def test_the_gpus_a_partition_offers_per_node(gres, gpus):
    run = lambda command, **kwargs: SimpleNamespace(stdout=gres + "\n")  # noqa: E731
    assert cluster.partition_gpus("p", run) == gpus


def test_a_gpu_request_beyond_the_partition_is_refused_by_name():
    run = lambda command, **kwargs: SimpleNamespace(stdout="gpu:1\n")  # noqa: E731
    found = cluster.gpu_problems({"finetune": ("gpu", 2), "tables": ("gpu", 0), "inference": ("gpu", 1)}, run)
    assert len(found) == 1 and found[0].startswith("rule finetune asks for 2 GPU(s) and partition 'gpu' has 1")


def test_site_settings_and_exclusive_timed_jobs_are_checked_before_submitting():
    found = cluster.settings_problems({"finetune": {"slurm_account": "lab", "slurm_partition": "SET-YOUR-PARTITION"},
                                       "tables": {"slurm_account": "lab"}})
    assert found == ["slurm_partition is not set (every rule): set default-resources: slurm_partition in "
                     "profiles/slurm/config.yaml to your site's value (sinfo lists the partitions)"]
    assert cluster.exclusive_problems({"finetune": "'--exclusive'", "inference": "--qos=high", "device_peak": None}) \
        == [f"rule {rule} is timed and must get a node of its own: add --exclusive to its slurm_extra under "
            "set-resources (profiles/slurm/config.yaml does; an overlay's set-resources replaces that whole section)"
            for rule in ("device_peak", "inference")]
