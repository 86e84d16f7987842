"""The fine-tuning job's plain parameters (qrepro.training.spec): what crosses to accelerate's processes, as JSON."""
import dataclasses
import json
import os

import pytest

from qrepro.training.spec import FinetuneJob, JobInputs, JobOutputs, JobParams, JobSpecError

HP = {"learning_rate": 2e-4, "batch_size": 4, "gradient_accumulation_steps": 2, "optim": "paged_adamw_8bit",
      "gradient_checkpointing": True, "weights_dtype": None,
      "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "bias": "none", "target_modules": ["q_proj", "v_proj"]},
      "quantization": {"quant_type": "nf4", "double_quant": True, "compute_dtype": "auto"}}
SHARED = {"max_steps": 500, "num_processes": 4, "precision": "bf16", "step_time_warmup": 5, "eval_max_samples": 0,
          "warmup_steps": 100, "eval_steps": 200, "save_steps": 500}
# what catalogue.declared gives the rule's `metrics` param: path -> catalogue entry
METRICS = {"results/metrics/qlora/step_time_s.json": {
    "scope": "qlora", "name": "step_time_s", "rule": "finetune", "unit": "s", "timing": True, "fields": {},
    "method": "Median optimizer-step time over steps {{ warmup + 1 }}-{{ steps }}.", "phrases": {}}}


TIMING = {"outside_load_cores": 0.1, "step_outlier_multiple": 3}
BOOTSTRAP = {"replicates": 2000, "seed": 0, "level": 0.95}


def _job():
    return FinetuneJob(
        variant="qlora", threads=16, scheduler_cores=16, log="results/logs/finetune_qlora.log",
        input=JobInputs(base_model="results/base_model", tokenizer="results/tokenizer", tokenized="results/tokenized"),
        output=JobOutputs(weights="results/models/qlora/adapter_model.safetensors",
                          log_history="results/train/qlora/log_history.csv",
                          hyperparameters="results/train/qlora/hyperparameters.json"),
        params=JobParams(hp=HP, shared=SHARED, seed=42, timing=TIMING, bootstrap=BOOTSTRAP, max_length=512,
                         metrics=METRICS, checkpoint_dir="results/checkpoints/qlora"))


def test_the_job_round_trips_through_json_field_by_field(tmp_path):
    job = _job()
    job.to_json(tmp_path / "job.json")
    back = FinetuneJob.from_json(tmp_path / "job.json")
    assert back == job
    assert (back.variant, back.threads, back.scheduler_cores, back.log) == (
        "qlora", 16, 16, "results/logs/finetune_qlora.log")
    assert dataclasses.asdict(back.input) == {"base_model": "results/base_model", "tokenizer": "results/tokenizer",
                                              "tokenized": "results/tokenized"}
    assert dataclasses.asdict(back.output) == {"weights": "results/models/qlora/adapter_model.safetensors",
                                               "log_history": "results/train/qlora/log_history.csv",
                                               "hyperparameters": "results/train/qlora/hyperparameters.json"}
    assert back.params.hp == HP and back.params.shared == SHARED
    assert back.params.timing == TIMING and back.params.bootstrap == BOOTSTRAP
    assert (back.params.seed, back.params.max_length, back.params.metrics, back.params.checkpoint_dir) == (
        42, 512, METRICS, "results/checkpoints/qlora")
    # every field of every part, no more: the test above covers the whole spec
    assert [f.name for f in dataclasses.fields(FinetuneJob)] == [
        "variant", "threads", "scheduler_cores", "log", "input", "output", "params"]
    assert [f.name for f in dataclasses.fields(JobParams)] == [
        "hp", "shared", "seed", "timing", "bootstrap", "max_length", "metrics", "checkpoint_dir"]
    assert all(f.metadata.get("help") for cls in (FinetuneJob, JobInputs, JobOutputs, JobParams)
               for f in dataclasses.fields(cls) if f.name not in ("input", "output", "params"))


def test_the_checkpoint_fingerprint_covers_the_code_the_job_runs_and_only_that(tmp_path):
    """Checkpoints are resumed only by the same code: editing a module fine-tuning imports (even indirectly) changes
    the fingerprint, editing one it never imports does not."""
    import shutil

    from conftest import ROOT
    from qrepro.training.job import job_code
    from qrepro.runtime import fingerprint
    scripts = tmp_path / "repo/scripts"
    shutil.copytree(ROOT / "scripts", scripts, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "schemas", tmp_path / "repo/schemas")
    code = job_code(scripts)
    assert str(scripts / "finetune.py") in code and str(scripts / "qrepro/model/quant.py") in code
    assert str(scripts / "qrepro/report/tables.py") not in code
    before = fingerprint({}, job_code(scripts))
    (scripts / "qrepro/report/tables.py").write_text("# not run by fine-tuning\n")
    assert fingerprint({}, job_code(scripts)) == before
    with open(scripts / "qrepro/data/tokenizer.py", "a") as handle:  # imported through training.job
        handle.write("\n# edited\n")
    assert fingerprint({}, job_code(scripts)) != before


def test_the_catalogue_entries_of_both_variants_cross_unchanged(tmp_path):
    """The rule's `metrics` param (catalogue.declared of the job's metric outputs) is plain JSON: what rank 0 checks
    its metric files against is what Snakemake declared."""
    from conftest import ROOT
    from qrepro import catalogue
    metrics = catalogue.load(ROOT / "paper/metrics.yaml")
    for variant in ("full", "qlora"):
        declared = metrics.declared(metrics.outputs("finetune", variant))
        assert declared
        job = dataclasses.replace(_job(), variant=variant, params=dataclasses.replace(_job().params, metrics=declared))
        job.to_json(tmp_path / "job.json")
        assert FinetuneJob.from_json(tmp_path / "job.json").params.metrics == declared


def _written(tmp_path, edit):
    data = dataclasses.asdict(_job())
    edit(data)
    path = tmp_path / "job.json"
    path.write_text(json.dumps(data))
    return path


def test_unknown_fields_are_refused_by_name(tmp_path):
    path = _written(tmp_path, lambda d: d.update(wildcards={"variant": "qlora"}))
    with pytest.raises(JobSpecError, match=r"FinetuneJob unknown field\(s\) wildcards \(expected exactly: variant"):
        FinetuneJob.from_json(path)
    path = _written(tmp_path, lambda d: d["params"].update(lr=1e-4))
    with pytest.raises(JobSpecError, match=r"FinetuneJob.params: JobParams unknown field\(s\) lr"):
        FinetuneJob.from_json(path)


def test_missing_fields_are_refused_by_name(tmp_path):
    path = _written(tmp_path, lambda d: d.pop("scheduler_cores"))
    with pytest.raises(JobSpecError, match=r"FinetuneJob missing field\(s\) scheduler_cores"):
        FinetuneJob.from_json(path)
    path = _written(tmp_path, lambda d: (d["input"].pop("tokenized"), d["input"].update(tokenised="x")))
    with pytest.raises(JobSpecError, match=r"JobInputs unknown field\(s\) tokenised; missing field\(s\) tokenized"):
        FinetuneJob.from_json(path)


def test_wrong_types_and_broken_files_are_refused(tmp_path):
    path = _written(tmp_path, lambda d: d.update(threads="16"))
    with pytest.raises(JobSpecError, match=r"FinetuneJob.threads must be int, got '16'"):
        FinetuneJob.from_json(path)
    path = _written(tmp_path, lambda d: d["params"].update(seed=True))
    with pytest.raises(JobSpecError, match=r"JobParams.seed must be int, got True"):
        FinetuneJob.from_json(path)
    path = _written(tmp_path, lambda d: d.update(output=["a", "b"]))
    with pytest.raises(JobSpecError, match=r"expected a JSON object for JobOutputs, got list"):
        FinetuneJob.from_json(path)
    path.write_text("not json")
    with pytest.raises(JobSpecError, match=r"is not a fine-tuning job spec \(invalid JSON"):
        FinetuneJob.from_json(path)


def test_the_spec_module_needs_neither_torch_nor_snakemake():
    import subprocess
    import sys

    from conftest import ROOT
    code = "import sys, qrepro.training.spec; loaded = {'torch', 'snakemake'} & set(sys.modules); assert not loaded, loaded"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT / "scripts")


def test_the_accelerate_worker_entry_reads_the_json_spec(tmp_path):
    """`python -m qrepro.training.job <job.json>` is what accelerate launch runs in every process: a spec that is not
    the job's fails there by name, before any training."""
    import subprocess
    import sys

    path = _written(tmp_path, lambda d: d.update(wildcards={"variant": "qlora"}))
    # from another folder, with no path set: the workers import the installed package (pip install -e .)
    env = {k: v for k, v in os.environ.items() if not (k.startswith("PYTHON") and k.endswith("PATH"))}
    result = subprocess.run([sys.executable, "-m", "qrepro.training.job", str(path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "JobSpecError" in result.stderr and "unknown field(s) wildcards" in result.stderr
