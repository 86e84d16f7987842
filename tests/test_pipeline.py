"""End to end: the whole DAG on configs/test.yaml, offline, in a fresh copy of the repository."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import LORA_TARGETS, PAPER, ROOT, snakemake
from qrepro.config_checks import merged_profile
from qrepro.metrics_io import read_metric
from qrepro.model.causal_lm import build_config

TEST_CONFIG = merged_profile(ROOT / "config.yaml", ROOT / "configs/test.yaml")  # what the test_run fixture runs

TRAIN_METRICS = ["total_params", "trainable_params", "trainable_percent", "train_time_s", "time_per_step_s",
                 "step_time_s", "train_steps", "train_loss_first", "train_loss_final", "precision",
                 "peak_train_memory_mb"]
TIMED_RULES = {"finetune", "finetune_qlora", "inference", "device_peak", "memory_probe"}


def _config(workdir):
    return merged_profile(workdir / "config.yaml", workdir / "configs/test.yaml")


def test_every_training_metric_is_written_and_valid(test_run):
    for variant in ("full", "qlora"):
        for name in TRAIN_METRICS:
            record = read_metric(test_run / f"results/metrics/{variant}/{name}.json")
            assert record["scope"] == variant and record["method"]
        assert (test_run / f"results/logs/finetune_{variant}.log").stat().st_size > 0
        assert (test_run / f"results/benchmarks/finetune_{variant}.tsv").exists()


def test_parameter_counts(test_run):
    config = _config(test_run)
    metric = lambda v, m: read_metric(test_run / f"results/metrics/{v}/{m}.json")["value"]  # noqa: E731
    arch = config["model"]["architecture"]
    lora = config["training"]["qlora"]["lora"]
    assert set(lora["target_modules"]) == set(LORA_TARGETS) and arch["model_type"] == "llama"
    # r x (in + out) of the seven projections by hand, from the profile's shapes
    h, inter, kv = arch["hidden_size"], arch["intermediate_size"], \
        arch["num_key_value_heads"] * arch["hidden_size"] // arch["num_attention_heads"]
    per_layer = 2 * (h + h) + 2 * (h + kv) + 2 * (h + inter) + (inter + h)  # q, o; k, v; gate, up; down
    assert metric("qlora", "trainable_params") == lora["r"] * per_layer * arch["num_hidden_layers"]
    assert metric("full", "trainable_params") == metric("full", "total_params") == metric("qlora", "total_params")
    assert abs(metric("qlora", "trainable_percent")
               - 100 * metric("qlora", "trainable_params") / metric("qlora", "total_params")) < 1e-9


def test_training_ran_the_recipe_and_the_loss_went_down(test_run):
    config = _config(test_run)
    for variant in ("full", "qlora"):
        history = pd.read_csv(test_run / f"results/train/{variant}/log_history.csv")
        evals = history.dropna(subset=["eval_loss"])
        assert len(evals) >= 2, "evaluation must run every eval_steps"
        assert evals["eval_loss"].iloc[-1] < evals["eval_loss"].iloc[0]
        resolved = json.loads((test_run / f"results/train/{variant}/hyperparameters.json").read_text())
        hp = config["training"][variant]
        assert resolved["per_device_train_batch_size"] == hp["batch_size"]
        assert resolved["gradient_accumulation_steps"] == hp["gradient_accumulation_steps"]
        assert resolved["learning_rate"] == hp["learning_rate"]
        assert read_metric(test_run / f"results/metrics/{variant}/train_steps.json")["value"] == config["training"]["max_steps"]
    assert json.loads((test_run / "results/train/qlora/hyperparameters.json").read_text())["quant_type"] == "nf4"
    pretrain = pd.read_csv(test_run / "results/train/base/pretrain_log_history.csv").dropna(subset=["loss"])
    assert pretrain["loss"].iloc[-1] < pretrain["loss"].iloc[0] - 1.0


def test_the_finetune_job_writes_every_hyperparameter_a_table_reads(test_run):
    from qrepro import catalogue
    read = {(spec.variant, spec.key) for table in catalogue.load(ROOT / "paper/metrics.yaml").tables
            for _, _, spec in table.cells() if spec.variant}
    assert read, "the tables read hyperparameters"
    for variant, key in read:
        written = json.loads((test_run / f"results/train/{variant}/hyperparameters.json").read_text())
        assert key in written, (variant, key)


def test_qlora_weights_are_an_adapter_and_full_is_a_whole_model(test_run):
    qlora = test_run / "results/models/qlora"
    assert (qlora / "adapter_model.safetensors").exists() and (qlora / "adapter_config.json").exists()
    assert not (qlora / "model.safetensors").exists()
    assert (test_run / "results/models/full/model.safetensors").exists()


def test_changing_a_qlora_hyperparameter_reruns_only_qlora(test_run):
    (test_run / "changed.yaml").write_text("training:\n  qlora:\n    learning_rate: 3.0e-4\n")
    result = snakemake(test_run, "--configfile", "configs/test.yaml", "changed.yaml", "-n", "train")
    planned = result.stdout
    assert "finetune" in planned and "wildcards: variant=qlora" in planned
    assert "variant=full" not in planned and "rule base_model" not in planned
    assert "Nothing to be done" in snakemake(test_run, "--configfile", "configs/test.yaml", "-n", "train").stdout


def test_measurement_files_are_consistent(test_run):
    m = lambda scope, name: read_metric(test_run / f"results/metrics/{scope}/{name}.json")["value"]  # noqa: E731
    record = lambda scope, name: read_metric(test_run / f"results/metrics/{scope}/{name}.json")  # noqa: E731
    for path in (test_run / "results/metrics").rglob("*.json"):
        read_metric(path)
    c = "comparison"
    # comparisons are their formula applied to the files they name
    assert m(c, "compression_ratio_paper_formula") == pytest.approx(
        m("structure", "size_fp16_mb_paper") / m("structure", "size_qlora_total_mb_paper"))
    assert m(c, "training_slowdown_percent_per_step") == pytest.approx(
        100 * (m("qlora", "step_time_s") / m("full", "step_time_s") - 1))
    assert m("structure", "lora_trainable_params") == m("qlora", "trainable_params")
    assert m("paper_structure", "total_params_packed_notebook") == PAPER["notebook_total_params_packed"]
    n, lora = PAPER["t2_total_params"], PAPER["t6_trainable_qlora"]  # the paper's formula: 2N / (0.5N + 2 lora)
    assert m(c, "paper_arch_compression_ratio_paper_formula") == pytest.approx(2 * n / (0.5 * n + 2 * lora))
    for variant in ("full", "qlora"):
        # counted FLOPs (FlopCounterMode) against the analytic executed count, padding included: equal here (fp32);
        # 0.1 % leaves room for another machine's autocast kernels and still catches any missing term (>= 1.8 %)
        assert m(variant, "flops_per_step_counted") == pytest.approx(m(variant, "flops_per_step_executed"), rel=1e-3)
        assert m(variant, "perplexity_token") < m("base", "perplexity_token")
        # MFU from its parts, both ways
        peak = m("device", "peak_flops")
        assert m(variant, "mfu_analytic") == pytest.approx(
            100 * m(variant, "flops_per_step_analytic") / m(variant, "step_time_s") / peak)
        assert m(variant, "mfu_paper") == pytest.approx(
            100 * m("structure", f"flops_per_step_{variant}_paper") * m(variant, "train_steps")
            / m(variant, "train_time_s") / peak)  # not a T4: the paper's protocol uses this device's peak
        # the median step is one step; the paper's time per step is the whole wall clock spread over the steps
        steps = record(variant, "step_time_s")["details"]
        assert steps["steps_recorded"] == m(variant, "train_steps") and steps["min_s"] <= m(variant, "step_time_s")
        assert m(variant, "time_per_step_s") == pytest.approx(m(variant, "train_time_s") / m(variant, "train_steps"))
    for variant in ("full", "qlora", "qlora_merged"):
        details = record(variant, "tokens_per_s")["details"]
        new_tokens = TEST_CONFIG["evaluation"]["new_tokens"]
        assert details["generated_tokens_per_run"] == [new_tokens] * details["runs"]  # counted from the output ids
    # one job timed every model in the same rounds: the slowdown's interval draws the same rounds for both (numpy)
    qlora, full = (record(v, "inference_time_s")["details"] for v in ("qlora", "full"))
    assert qlora["timed_together"] == full["timed_together"] and qlora["run_rounds"] == full["run_rounds"]
    rounds, boot = max(full["run_rounds"]), full["bootstrap"]
    draws = np.random.default_rng(boot["seed"]).integers(0, rounds, size=(boot["replicates"], rounds))
    medians = [np.median(np.asarray(d["run_times_s"]).reshape(rounds, -1)[draws].reshape(len(draws), -1), axis=1)
               for d in (qlora, full)]
    slowdown = record(c, "inference_slowdown_x")["interval"]
    assert (slowdown["low"], slowdown["high"]) == pytest.approx(tuple(np.percentile(medians[0] / medians[1], [2.5, 97.5])))
    assert "paired by round" in slowdown["method"]
    qlora_size = record("qlora", "model_size_memory_mb")
    assert qlora_size["details"]["adapter_dtypes"] == ["float32"] and "float32" in qlora_size["method"]
    assert qlora_size["details"]["adapter_bytes"] == 4 * m("qlora", "trainable_params")


def test_qlora_uses_gradient_checkpointing_as_the_paper_and_standard_does_not(test_run):
    hp = {v: json.loads((test_run / f"results/train/{v}/hyperparameters.json").read_text()) for v in ("full", "qlora")}
    assert hp["qlora"]["gradient_checkpointing"] is True and hp["full"]["gradient_checkpointing"] is False
    counted = read_metric(test_run / "results/metrics/qlora/flops_per_step_counted.json")["details"]["per_operator"]
    forward = read_metric(test_run / "results/metrics/qlora/flops_per_step_executed.json")
    assert forward["details"]["gradient_checkpointing"] is True
    # the 4-bit matmuls run twice per step: the forward, and its recomputation in the backward
    config = _config(test_run)
    model_config = build_config(config["model"]["architecture"], config["tokenizer"]["vocab_size"], 1, 2)
    from qrepro.model.causal_lm import meta_model
    weights = sum(m.weight.numel() for name, m in meta_model(model_config).named_modules()
                  if type(m).__name__ == "Linear" and name != "lm_head")  # every decoder linear is 4-bit
    tokens = forward["details"]["tokens_per_step"]
    assert counted["bitsandbytes.gemm_4bit"] == 2 * 2 * weights * tokens


def _job_events(log_text):
    """(event, jobid, rule) in the order the Snakemake log records them."""
    events, rule = [], None
    for line in log_text.splitlines():
        started = re.match(r"^(?:local)?rule (\w+):$", line)
        if started:
            rule = started[1]
        job = re.match(r"^\s+jobid: (\d+)$", line)
        if job and rule:
            events.append(("start", int(job[1]), rule))
            rule = None
        finished = re.match(r"^Finished jobid: (\d+) \(Rule: (\w+)\)", line)
        if finished:
            events.append(("finish", int(finished[1]), finished[2]))
    return events


def test_timed_jobs_never_overlap_another_job(test_run):
    """The whole test-profile DAG ran with --cores 2; no job may be running while a timed job runs."""
    logs = [p for p in (test_run / ".snakemake/log").glob("*.snakemake.log")
            if "--configfile configs/test.yaml --cores 2 report" in p.read_text()]
    assert len(logs) == 1, "the fixture's own log (other tests add logs of their own runs)"
    log = logs[0]
    events = _job_events(log.read_text())
    running, timed_seen = {}, set()
    for event, job, rule in events:
        if event == "start":
            others = set(running.values())
            assert not (rule in TIMED_RULES and others), f"timed job {rule} started while {others} ran"
            assert not (set(running.values()) & TIMED_RULES), f"{rule} started while timed {others} ran"
            running[job] = rule
            timed_seen |= {rule} & TIMED_RULES
        else:
            running.pop(job)
    assert timed_seen == TIMED_RULES - {"memory_probe"} and not running
    assert "Provided cores: 2" in log.read_text()
    for scope, name in [("full", "train_time_s"), ("qlora", "step_time_s")]:
        details = read_metric(test_run / f"results/metrics/{scope}/{name}.json")["details"]
        assert details["ran_alone"] and [(p["reserved_cores"], p["scheduler_cores"]) for p in details["processes"]] == [(2, 2)]
    for scope, name in [("qlora_merged", "tokens_per_s"), ("device", "peak_flops")]:
        details = read_metric(test_run / f"results/metrics/{scope}/{name}.json")["details"]
        assert details["ran_alone"] and details["reserved_cores"] == details["scheduler_cores"] == 2


def test_evaluations_and_saves_follow_the_recipe(test_run):
    config = _config(test_run)["training"]
    for variant in ("full", "qlora"):
        details = read_metric(test_run / f"results/metrics/{variant}/train_time_s.json")["details"]
        history = pd.read_csv(test_run / f"results/train/{variant}/log_history.csv").dropna(subset=["eval_loss"])
        expected = list(range(config["eval_steps"], config["max_steps"] + 1, config["eval_steps"]))
        assert details["evaluations_at_steps"] == expected == history["step"].astype(int).tolist()
        assert details["saves_at_steps"][-1] == config["max_steps"]


def test_memory_probe_measures_both_variants(run_copy):
    snakemake(run_copy, "--configfile", "configs/test.yaml", "--cores", "2", "memory")
    config = _config(run_copy)
    for variant in ("full", "qlora"):
        record = read_metric(run_copy / f"results/metrics/probe_{variant}/peak_train_memory_mb.json")
        details = record["details"]
        assert details["steps"] == config["probe"]["steps"] and details["memory"]["baseline_mb"] > 100
        assert record["value"] == pytest.approx(details["memory"]["peak_mb"] - details["memory"]["baseline_mb"])
        step = read_metric(run_copy / f"results/metrics/probe_{variant}/step_time_s.json")
        assert step["details"]["steps_timed"] == config["probe"]["steps"] - config["probe"]["warmup_steps"]


def _job_record(run, output: str) -> dict:
    """What Snakemake recorded about the job that wrote `output` (.snakemake/metadata): its inputs and params."""
    import base64
    return json.loads((run / ".snakemake/metadata" / base64.urlsafe_b64encode(output.encode()).decode()).read_text())


def _job_inputs(run, output: str) -> list[str]:
    """The declared inputs of the job that wrote `output`."""
    return [path for path in _job_record(run, output)["input"] if not path.startswith(("scripts/", "schemas/"))]


def _literal(text: str):
    """A param as Snakemake recorded it (its repr), read back; a repr that is not a literal stays text."""
    import ast
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _holds(param, value) -> bool:
    """The param is the value, or holds it at any depth (a config section passed whole)."""
    if param == value:
        return True
    children = param.values() if isinstance(param, dict) else param if isinstance(param, (list, tuple)) else []
    return any(_holds(child, value) for child in children)


def _config_value(config: dict, key: str):
    for part in key.split("."):
        config = config[part]  # a key the configuration lacks fails here
    return config


def test_every_metric_file_names_the_inputs_its_job_declared_and_only_those(test_run):
    """A file's inputs are files its job declared (or files inside a declared folder) and config keys; together the
    files of one job name every data input it declared. Listing the base model for the full model, which never loads
    it, or leaving out the tokenizer that inference reads, fails here."""
    by_job: dict[tuple, set] = {}
    for path in sorted((test_run / "results/metrics").rglob("*.json")):
        output = str(path.relative_to(test_run))
        record, declared = read_metric(path), _job_inputs(test_run, output)
        job = tuple(declared)
        for name in record["inputs"]:
            if ": " in name:  # a config key: from this run's config (reaching the job as a param) or a declared profile
                source, key = name.split(": ")
                assert source == "config" or source in declared, (output, name)
                if source == "config":
                    value, params = _config_value(TEST_CONFIG, key), _job_record(test_run, output)["params"]
                    assert any(_holds(_literal(p), value) for p in params), (output, name, value, params)
                else:
                    _config_value(merged_profile(ROOT / "config.yaml", test_run / source), key)
                continue
            assert any(name == d or name.startswith(d.rstrip("/") + "/") for d in declared), (output, name, declared)
            by_job.setdefault(job, set()).add(name)
        by_job.setdefault(job, set())
    for declared, named in by_job.items():
        data = [d for d in declared if d not in ("configs/paper.yaml",)]
        missing = [d for d in data if not any(n == d or n.startswith(d.rstrip("/") + "/") for n in named)]
        assert not missing, (declared, missing)


def test_every_perplexity_and_perplexity_change_carries_its_test_set_interval(test_run):
    """Each perplexity is exactly what its audit file's per-row / per-window NLLs give, and carries a 95% interval
    that contains it; each perplexity comparison carries a paired interval and names the audit files it read."""
    import math
    boot = TEST_CONFIG["evaluation"]["bootstrap"]
    for model in ("base", "full", "qlora"):
        audit = json.loads((test_run / f"results/eval/{model}/perplexity_audit.json").read_text())
        token = read_metric(test_run / f"results/metrics/{model}/perplexity_token.json")
        paper = read_metric(test_run / f"results/metrics/{model}/perplexity_paper.json")
        row = read_metric(test_run / f"results/metrics/{model}/perplexity_row.json")
        units = audit["token"]
        assert token["value"] == pytest.approx(math.exp(math.fsum(units["nll"]) / sum(units["tokens"])), rel=1e-9)
        assert sum(units["tokens"]) == token["details"]["scored_tokens"]
        # the article units are the windows' sums per article; the per-row ones add up to the per-row perplexity
        for key in ("nll", "tokens"):
            sums = {}
            for article, value in zip(units["article"], units[key]):
                sums[article] = sums.get(article, 0) + value
            assert audit["token_article"][key] == pytest.approx(list(sums.values()), rel=1e-12)
        assert row["value"] == pytest.approx(math.exp(math.fsum(audit["row"]["nll"]) / sum(audit["row"]["tokens"])),
                                             rel=1e-9)
        rows = audit["paper"]["nll"]
        assert paper["value"] == pytest.approx(math.exp(sum(rows) / len(rows)), rel=1e-9)
        articles = len(audit["token_article"]["nll"])
        assert articles == len(set(units["article"])) >= 2
        for interval, value, unit, count in ((token["interval"], token["value"], "article", articles),
                                             (token["details"]["interval_by_window"], token["value"], "window",
                                              len(units["nll"])),
                                             (row["interval"], row["value"], "article", articles),
                                             (paper["interval"], paper["value"], "test row", len(rows))):
            assert interval["low"] <= value <= interval["high"] and interval["level"] == boot["level"]
            assert f"{count} {unit}s" in interval["method"] and f"{boot['replicates']} resamples" in interval["method"]
    for protocol in ("paper", "token", "row"):
        change = read_metric(test_run / f"results/metrics/comparison/perplexity_change_percent_{protocol}.json")
        assert change["interval"]["low"] < change["value"] < change["interval"]["high"]
        assert "paired" in change["interval"]["method"]
        assert {"results/eval/full/perplexity_audit.json", "results/eval/qlora/perplexity_audit.json"} <= set(
            change["inputs"])


def test_a_perplexity_changes_interval_is_recomputed_from_the_audit_files_alone(test_run):
    """The token-level change's intervals, rebuilt here with numpy from nothing but the two audit files and the
    bootstrap settings: by article (the windows summed per article, the same resample of articles for both models)
    and by window (details.interval_by_window); the change per resample, its central 95%."""
    import numpy as np
    boot = TEST_CONFIG["evaluation"]["bootstrap"]
    audits = {m: json.loads((test_run / f"results/eval/{m}/perplexity_audit.json").read_text())["token"]
              for m in ("full", "qlora")}
    assert audits["full"]["tokens"] == audits["qlora"]["tokens"]  # the same windows, scored by both
    assert audits["full"]["article"] == audits["qlora"]["article"]
    order = list(dict.fromkeys(audits["full"]["article"]))
    owner = np.array([order.index(a) for a in audits["full"]["article"]])
    by_article = {m: {k: np.bincount(owner, weights=np.asarray(a[k], dtype=float)) for k in ("nll", "tokens")}
                  for m, a in audits.items()}
    by_window = {m: {k: np.asarray(a[k], dtype=float) for k in ("nll", "tokens")} for m, a in audits.items()}
    change = read_metric(test_run / "results/metrics/comparison/perplexity_change_percent_token.json")
    tail = 100 * (1 - boot["level"]) / 2
    for units, interval in ((by_article, change["interval"]), (by_window, change["details"]["interval_by_window"])):
        count = len(units["full"]["nll"])
        rows = np.random.default_rng(boot["seed"]).integers(0, count, size=(boot["replicates"], count))
        ppl = {m: np.exp(u["nll"][rows].sum(1) / u["tokens"][rows].sum(1)) for m, u in units.items()}
        expected = np.percentile(100 * (ppl["qlora"] / ppl["full"] - 1), [tail, 100 - tail])
        assert (interval["low"], interval["high"]) == pytest.approx(tuple(expected), rel=1e-9)
