"""No stale, damaged or edited result reaches a report; two clean runs give identical files; a killed training resumes."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PAPER, ROOT, snakemake
from qrepro.metrics_io import read_metric


def _non_timing_metrics(run: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted((run / "results/metrics").rglob("*.json")):
        if not json.loads(path.read_text())["timing"]:
            out[str(path.relative_to(run))] = path.read_bytes()
    return out


def test_two_clean_runs_give_byte_identical_non_timing_metrics(test_run, second_clean_run):
    """A second clean run of the test profile (through SLURM where the local cluster runs, conftest) must give every
    non-timing metric file of the first, comparisons included, byte for byte."""
    first, second = _non_timing_metrics(test_run), _non_timing_metrics(second_clean_run)
    assert len(first) > 100 and first.keys() == second.keys()
    assert any("/comparison/" in name for name in first)
    differing = [name for name in first if first[name] != second[name]]
    assert differing == []


TARGET = "results/metrics/full/train_loss_final.json"


def test_killed_training_resumes_from_its_last_checkpoint(test_run, tmp_path):
    """Full fine-tuning of the test profile, SIGKILLed after its first complete checkpoint and run again, ends where
    the clean run (test_run) ended, and its times cover both processes. The copy keeps test_run's data and base
    model (mtimes kept, so Snakemake re-runs only the training job whose outputs are removed here)."""
    killed = tmp_path / "killed"
    shutil.copytree(test_run, killed, symlinks=True, ignore=shutil.ignore_patterns("checkpoints"))
    for output in [*(killed / "results/metrics/full").glob("*.json"), *(killed / "results/models/full").glob("*"),
                   *(killed / "results/train/full").glob("*")]:
        output.unlink()
    # no reruns: a resumed attempt that observed outside load would otherwise be discarded and trained again from
    # the start (tests/test_contamination.py tests that), and this test is about the resume
    (killed / "noreruns.yaml").write_text("timing:\n  reruns: 0\n")
    args = ["--configfile", "configs/test.yaml", "noreruns.yaml", "--cores", "1"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    job = subprocess.Popen([sys.executable, "-m", "snakemake", *args, TARGET], cwd=killed, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoints = killed / "results/checkpoints/full"
    deadline = time.time() + 300
    while not list(checkpoints.glob("checkpoint-*/timing.json")):  # the file a checkpoint gets last
        assert job.poll() is None, "the job ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert not (killed / TARGET).exists()
    first = min(int(p.parent.name.split("-")[1]) for p in checkpoints.glob("checkpoint-*/timing.json"))
    saved = {p.parent.name: json.loads(p.read_text()) for p in checkpoints.glob("checkpoint-*/timing.json")}
    steps = read_metric(test_run / "results/metrics/full/train_steps.json")["value"]
    assert first < steps

    snakemake(killed, "--unlock", *args)
    snakemake(killed, *args, "--rerun-incomplete", TARGET)
    log = (killed / "results/logs/finetune_full.log").read_text()
    assert re.search(r"resumed from .*checkpoint-\d+", log)
    train_time = read_metric(killed / "results/metrics/full/train_time_s.json")
    details = train_time["details"]
    assert details["resumed_from"] and details["steps_run_in_this_process"] <= steps - first
    for name in ("train_steps", "train_loss_final", "trainable_params"):  # as the clean run ended
        assert read_metric(killed / f"results/metrics/full/{name}.json")["value"] == \
            read_metric(test_run / f"results/metrics/full/{name}.json")["value"], name
    # times cover the whole run: the killed process up to its checkpoint, then the resumed one
    resumed = saved[Path(details["resumed_from"]).name]
    assert details["wall_s_earlier_processes"] == resumed["wall_s"] > 0
    assert train_time["value"] == pytest.approx(resumed["wall_s"] + details["wall_s_this_process"])
    assert len(details["processes"]) == 2 and details["ran_alone"]
    # the machine's load is observed over both processes: the killed one's up to its checkpoint, then this one's
    observed = details["observed_load"]
    assert len(observed["segments"]) == 2 and observed["segments"][0] == resumed["processes"][0]["observed_load"]
    assert observed["segments"][0]["wall_s"] == pytest.approx(resumed["wall_s"], abs=0.05)
    assert observed["outside_cores_mean"] == pytest.approx(
        sum(s["outside_cpu_s"] for s in observed["segments"]) / sum(s["wall_s"] for s in observed["segments"]))
    step_times = read_metric(killed / "results/metrics/full/step_time_s.json")["details"]
    # 4 warm-up steps, and the resumed process's first step (a warm-up of its own)
    assert step_times["restart_steps_excluded"] == [resumed["global_step"] + 1]
    assert step_times["steps_recorded"] == steps and step_times["steps_timed"] == steps - 4 - 1
    per_step = read_metric(killed / "results/metrics/full/time_per_step_s.json")["value"]
    assert per_step == pytest.approx(train_time["value"] / steps)
    # a second rerun finds only the finished run's last checkpoint: it trains again, never past max_steps
    (killed / TARGET).unlink()  # (not --forcerun: it would also re-run every job downstream of training)
    snakemake(killed, *args, TARGET)
    again = read_metric(killed / "results/metrics/full/train_time_s.json")["details"]
    assert again["resumed_from"] is None and len(again["processes"]) == 1
    assert read_metric(killed / "results/metrics/full/train_steps.json")["value"] == steps
    assert "Nothing to be done" in snakemake(killed, *args, "-n", TARGET).stdout


def _report_mtimes(run):
    return {p.name: p.stat().st_mtime_ns for p in (run / "report").glob("report.*")}


@pytest.mark.parametrize("victim, keep_bytes, message", [
    ("results/metrics/qlora/perplexity_token.json", 40, "results/metrics/qlora/perplexity_token.json"),
    ("results/models/qlora/adapter_model.safetensors", 100,
     "results/models/qlora/adapter_model.safetensors is unreadable (truncated or corrupt)"),
], ids=["truncated-metric", "corrupt-adapter"])
def test_a_damaged_file_stops_the_report_and_is_named(run_copy, victim, keep_bytes, message):
    before = _report_mtimes(run_copy)
    path = run_copy / victim
    path.write_bytes(path.read_bytes()[:keep_bytes])
    result = snakemake(run_copy, "--configfile", "configs/test.yaml", "--cores", "1", "report", check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert _report_mtimes(run_copy) == before


def test_deleted_adapter_weights_are_noticed_not_reported_stale(run_copy):
    """A deleted weight file sits inside no directory output Snakemake would miss: the plan re-trains QLoRA
    (and everything measured from it) instead of keeping a report built from weights that no longer exist."""
    (run_copy / "results/models/qlora/adapter_model.safetensors").unlink()
    planned = snakemake(run_copy, "--configfile", "configs/test.yaml", "-n", "report").stdout
    jobs = set(re.findall(r"^(?:local)?rule (\w+):", planned, re.M))
    assert {"finetune_qlora", "manifest", "render", "pdf"} <= jobs and "finetune" not in jobs


def test_manifest_catches_a_result_edited_after_it_was_written(run_copy):
    from qrepro.report.context import ManifestError, verify_manifest
    os.chdir(run_copy)
    try:
        verify_manifest("results/manifest.json")
        table = Path("results/tables/table05.csv")
        table.write_text(table.read_text().replace(str(PAPER["t5_compression"]), "9.99"))
        with pytest.raises(ManifestError, match="results/tables/table05.csv changed"):
            verify_manifest("results/manifest.json")
    finally:
        os.chdir(ROOT)
