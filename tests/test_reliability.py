"""Bad input refused up front, determinism, resume after SIGKILL, no stale or corrupt data in a report."""
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
import torch

from conftest import LORA_TARGETS, PAPER, ROOT, copy_workflow, snakemake
from qrepro.metrics_io import read_metric


@pytest.fixture(scope="module")
def clean_copy(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("bad"))


BAD_CONFIGS = [
    ("training:\n  qlora:\n    learning_rate: -0.001\n", "-0.001 is less than or equal to the minimum of 0"),
    ("training:\n  max_steps: 0\n", "0 is less than the minimum of 1"),
    ("training:\n  full:\n    batch_size: 0\n", "0 is less than the minimum of 1"),
    ("data:\n  source: web\n", "'web' is not one of ['bundled', 'synthetic', 'hf', 'local']"),
    ("model:\n  source: ftp\n", "'ftp' is not one of ['pretrain', 'hub', 'local']"),
    ("training:\n  qlora:\n    quantization:\n      quant_type: int3\n", "'int3' is not one of ['nf4', 'fp4']"),
    ("training:\n  qlora:\n    optim: adam_magic\n", "'adam_magic' is not one of"),
    ("training:\n  qlora:\n    lora:\n      r: 0\n", "0 is less than the minimum of 1"),
    # names are the model's to check (tests/test_families.py); the schema takes a list of names or all-linear
    ("training:\n  qlora:\n    lora:\n      target_modules: all_linear\n", "'all_linear' is not valid under any of"),
    ("data:\n  max_length: 4096\n", "data.max_length=4096 exceeds the model's maximum positions"),
    ("model:\n  architecture:\n    num_attention_heads: 3\n", "num_attention_heads=3 must divide hidden_size=64"),
    ("data:\n  source: local\n  local_dir: /no/such/dir\n", "data.local_dir='/no/such/dir' does not exist"),
    ("training:\n  max_steps: lots\n", "'lots' is not of type 'integer'"),
    ("training:\n  max_stepz: 10\n", "'max_stepz' was unexpected"),
    ("training:\n  precision: fp16\n", "training.precision=fp16 needs a CUDA device"),
]


@pytest.mark.slow  # runs Snakemake beyond -n (conftest: MarkItSlow)
@pytest.mark.parametrize("override, message", BAD_CONFIGS, ids=[m[:40] for _, m in BAD_CONFIGS])
def test_bad_configuration_is_refused_before_any_job(clean_copy, override, message):
    (clean_copy / "bad.yaml").write_text(override)
    result = snakemake(clean_copy, "--configfile", "configs/test.yaml", "bad.yaml", "--cores", "1", "train", check=False)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (clean_copy / "results").exists(), "nothing may be written before the configuration is accepted"


def test_unknown_variant_has_no_rule(clean_copy):
    result = snakemake(clean_copy, "--configfile", "configs/test.yaml", "-n", "results/metrics/lora/train_time_s.json",
                       check=False)
    assert result.returncode != 0 and "MissingRuleException" in result.stderr + result.stdout


def _non_timing_metrics(run: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted((run / "results/metrics").rglob("*.json")):
        if not json.loads(path.read_text())["timing"]:
            out[str(path.relative_to(run))] = path.read_bytes()
    return out


def test_two_clean_runs_give_byte_identical_non_timing_metrics(test_run, tmp_path):
    """A second clean run builds every non-timing metric file of the first (comparisons aside: their rule also
    needs the timed inference jobs, and each is its formula over files checked here) and must match byte for byte."""
    second = copy_workflow(tmp_path / "second")
    targets = [name for name in _non_timing_metrics(test_run) if "/comparison/" not in name]
    snakemake(second, "--configfile", "configs/test.yaml", "--cores", "2", *targets)
    first_files = {k: v for k, v in _non_timing_metrics(test_run).items() if "/comparison/" not in k}
    second_files = _non_timing_metrics(second)
    assert len(first_files) > 80 and first_files.keys() == second_files.keys()
    differing = [name for name in first_files if first_files[name] != second_files[name]]
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


def test_a_pickled_checkpoint_is_refused(tmp_path):
    """Weights only from safetensors: a model folder holding only pytorch_model.bin (a pickle) does not load."""
    from qrepro.model.causal_lm import load_pretrained
    from tiny_models import tiny_model

    model = tiny_model("llama", vocab=64, seed=0)
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")  # the pickled format safetensors replaces
    assert (tmp_path / "pytorch_model.bin").exists() and not list(tmp_path.glob("*.safetensors"))
    with pytest.raises(OSError, match="safetensors"):
        load_pretrained(str(tmp_path))


def test_remote_code_in_a_model_folder_never_runs(tmp_path):
    """A config that asks for its own modelling code (auto_map) is refused, and that code is never imported."""
    from qrepro.model.causal_lm import load_pretrained

    marker = tmp_path / "ran"
    (tmp_path / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "evil", "architectures": ["EvilForCausalLM"],
                                                      "auto_map": {"AutoConfig": "modeling_evil.EvilConfig",
                                                                   "AutoModelForCausalLM": "modeling_evil.Evil"}}))
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_pretrained(str(tmp_path))
    assert not marker.exists()


def test_the_pdf_is_built_without_shell_escape(tmp_path):
    """A report whose text tried to run a command (\\write18) compiles, and the command does not run."""
    import shutil
    import subprocess

    from qrepro.report.pdf import latexmk_command

    if shutil.which("latexmk") is None:
        pytest.skip("latexmk is not installed (bash install.sh installs TeX Live)")
    marker = tmp_path / "pwned"
    tex = tmp_path / "report.tex"
    tex.write_text(rf"\documentclass{{article}}\begin{{document}}\immediate\write18{{touch {marker}}}x\end{{document}}")
    subprocess.run(latexmk_command(tex), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (tmp_path / "report.pdf").exists() and not marker.exists()


def test_no_shell_calls_and_no_unsafe_torch_load_in_the_code():
    """From the syntax tree of every script: no subprocess call with shell=True, every torch.load with
    weights_only=True, no trust_remote_code=True."""
    import ast

    wrong = []
    for path in (ROOT / "scripts").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            constant = {k: getattr(v, "value", None) for k, v in keywords.items()}
            if constant.get("shell") is True or constant.get("trust_remote_code") is True:
                wrong.append(f"{path}:{node.lineno}")
            name = ast.unparse(node.func)
            if name == "torch.load" and constant.get("weights_only") is not True:
                wrong.append(f"{path}:{node.lineno} torch.load without weights_only=True")
    assert not wrong, wrong


def test_memory_guard_refuses_what_cannot_fit():
    from qrepro.model.anatomy import describe
    from qrepro.model.causal_lm import build_config
    from qrepro.training.resources import GIB, InsufficientMemoryError, guard, training_memory_estimate
    from tiny_models import paper_architecture
    arch = paper_architecture()  # TinyLlama-1.1B
    config = build_config(arch, arch["vocab_size"], 1, 2)
    lora = dict(r=16, alpha=32, dropout=0.0, bias="none", target_modules=list(LORA_TARGETS))
    full = training_memory_estimate(describe(config), "full", 2, 512)
    facts = describe(config, lora)
    assert (facts.total_params, facts.trainable_params) == (PAPER["t2_total_params"], PAPER["t6_trainable_qlora"])
    qlora = training_memory_estimate(facts, "qlora", 4, 512, optimizer="paged_adamw_8bit")
    assert 17 * GIB < full["total"] < 25 * GIB and qlora["parameters_and_states"] < 1 * GIB < qlora["total"] < 8 * GIB
    with pytest.raises(InsufficientMemoryError, match=r"fine-tuning full needs about .* GiB .* only 8.0 GiB of available RAM"):
        guard(full, 8 * GIB, "available RAM", "fine-tuning full")
    guard(qlora, 8 * GIB, "available RAM", "fine-tuning qlora")


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
