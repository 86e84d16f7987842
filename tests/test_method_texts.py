"""Method texts are true of the code: the catalogue's texts on the branches a CPU run never takes."""


from conftest import ROOT
from qrepro import catalogue


CATALOGUE = catalogue.load(ROOT / "paper/metrics.yaml")


def _render(scope, name, **fields):
    from qrepro.metrics_io import render_method
    spec = CATALOGUE.specs[(scope, name)]
    declared = CATALOGUE.declared([spec.path])[spec.path]
    timing = spec.timing if isinstance(spec.timing, bool) else render_method({"method": spec.timing}, fields) == "True"
    return render_method(declared, {**spec.fields, **fields}), timing


def test_method_texts_on_the_branches_a_cpu_run_never_takes():
    """The real catalogue's texts where they depend on how the value was obtained (CUDA, a configured peak,
    random weights, QLoRA without checkpointing), against the sentences they must read as."""
    assert _render("device", "peak_flops", source="override") == (
        "Peak for MFU: evaluation.peak_flops in the config.", False)
    assert _render("device", "peak_flops", source="cuda", accelerator="H200", gpu="NVIDIA H200") == (
        "Peak for MFU: spec-sheet dense fp16/bf16 peak of H200 (NVIDIA H200).", False)
    measured, timing = _render("device", "peak_flops", source="measured", runs=9, size=2048, precision="fp32",
                               threads=2, outside_load=True, outside_cores=0.42, training=False, attempts=3,
                               reruns_allowed=2, threshold=0.1, contaminated=True)
    assert timing and measured.startswith("Peak for MFU: measured: the best of 9 timed runs of four 2048x2048 fp32 ")
    assert "averaged 0.42 cores (details.observed_load), and the time includes its effect. Reruns (timing.reruns): " \
           "a job whose observed outside load is above 0.1 cores (timing.outside_load_cores) redoes its timed work, " \
           "up to 2 more time(s); this value is the kept attempt's" in measured
    assert measured.endswith("CONTAMINATED: all 3 attempt(s) observed outside load, so the last is kept and marked, "
                             "and so is every number computed from it. No interval: the best of its runs, one job.")
    kept = dict(outliers=2, outlier_multiple=3, outlier_excess_s=1.5, outside_load=False, outside_cores=0.02,
                training=True, reruns_allowed=2, threshold=0.1, contaminated=False)
    assert "Attempt 2 was kept: the 1 before it observed outside load and were discarded" in \
        _render("qlora", "train_time_s", attempts=2, **kept)[0]
    assert "trains again from the same start" in _render("qlora", "train_time_s", attempts=1, **kept)[0]
    assert _render("full", "peak_train_memory_mb", cuda=True)[0].startswith(
        "Peak memory of trainer.train(): torch.cuda.max_memory_allocated during the block")
    padding = dict(samples=100, max_length=512, scored_tokens=51100, padding_tokens=40880, padding_percent=80.0)
    ppl, _ = _render("base", "perplexity_paper", dtype="fp16", init="random", **padding)
    assert ppl.endswith("scored: 80.0% of the 51100 scored tokens are padding (fp16). Random weights (model.init: "
                        "random): not meaningful.")
    assert "not meaningful" not in _render("base", "perplexity_paper", dtype="fp16", init="pretrained", **padding)[0]
    executed = lambda **f: _render("qlora", "flops_per_step_executed", **{"counted_instead": "", **f})[0]  # noqa: E731
    assert "first layer's q/k/v inputs need no gradient" in executed(variant="qlora", gradient_checkpointing=False)
    assert "recomputed by gradient checkpointing" in executed(variant="qlora", gradient_checkpointing=True)
    assert "q/k/v" not in executed(variant="full", gradient_checkpointing=False)
    fused = executed(variant="qlora", gradient_checkpointing=True, counted_instead="decoder layers of qkv_proj, ...")
    assert fused.startswith("Counted, not by formula") and "(decoder layers of qkv_proj, ...)" in fused
    assert "Analytic" not in fused
    generation, _ = _render("qlora", "tokens_per_s", new_tokens=50, dtype="fp16", cuda=False, threads=2,
                            repetitions=3, prompts=3, models=3, outside_load=False, outside_cores=0.01, training=False,
                            attempts=2, reruns_allowed=2, threshold=0.1, contaminated=False)
    assert "Median over the 9 runs" in generation
    assert ("a job whose observed outside load is above 0.1 cores (timing.outside_load_cores) redoes its timed work, "
            "up to 2 more time(s)") in generation
    assert "Attempt 2 was kept: the 1 before it observed outside load and were discarded" in generation
    assert ("in fp16 on CPU (2 thread(s)), the 3 models loaded in one job and timed in 3 interleaved rounds after one "
            "warm-up run per model and prompt: in each round every model runs each of the paper's 3 prompts once") \
        in generation
    assert _render("data_card", "pretrain_rows")[0].endswith(" null when the source has no pretraining split.")
    assert _render("data_card", "train_rows")[0] == "Rows of the split as loaded, empty rows included."
