"""The paper's Tables 1-12, rebuilt from metric files, each reproduced number beside its published one.

A table is a list of rows; a row maps column names to Cells. Each Cell knows the file its value came
from and the paper value it is compared with, so the CSV written for auditing carries both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from qrepro.report.store import MetricStore

VARIANT_LABEL = {"full": "Standard FT", "qlora": "QLoRA", "qlora_merged": "QLoRA merged", "base": "Base (no fine-tuning)"}
DASH = "—"


def fmt(value: Any, kind: str) -> str:
    """Display format of a value; kind names how the report prints that quantity."""
    if value is None:
        return DASH
    if kind == "text" or isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if kind == "int":
        return f"{int(round(value)):,}"
    if kind == "tflops":  # a FLOP count printed in TFLOPs
        return f"{value / 1e12:,.4g}"
    if kind == "sci":
        return f"{value:.3e}"
    if kind.startswith("f"):
        return f"{value:,.{int(kind[1:])}f}"
    if kind == "g":
        return f"{value:.4g}"
    raise ValueError(f"unknown format {kind!r}")


@dataclass
class Cell:
    value: Any
    kind: str = "g"
    source: str | None = None
    paper_id: str | None = None

    def ratio(self, paper: dict) -> float | None:
        if self.paper_id is None or self.paper_id not in paper:
            return None
        published = paper[self.paper_id]["value"]
        if isinstance(self.value, (int, float)) and not isinstance(self.value, bool) \
                and isinstance(published, (int, float)) and published != 0:
            return self.value / published
        return None


@dataclass
class Table:
    number: int
    caption: str
    columns: list[str]
    rows: list[tuple[str, dict[str, Cell]]]
    notes: list[str] = field(default_factory=list)

    def display_frame(self, paper: dict) -> pd.DataFrame:
        data = {}
        for column in self.columns:
            for sub in ("Reproduced", "Paper", "Ratio"):
                data[(column, sub)] = []
        for _, cells in self.rows:
            for column in self.columns:
                cell = cells.get(column)
                if cell is None:
                    values = [DASH, DASH, DASH]
                else:
                    published = paper.get(cell.paper_id) if cell.paper_id else None
                    ratio = cell.ratio(paper)
                    values = [fmt(cell.value, cell.kind),
                              fmt(published["value"], cell.kind if not isinstance(published["value"], str) else "text")
                              if published else DASH,
                              f"{ratio:.3g}×" if ratio is not None else DASH]
                for sub, text in zip(("Reproduced", "Paper", "Ratio"), values):
                    data[(column, sub)].append(text)
        frame = pd.DataFrame(data, index=[label for label, _ in self.rows])
        frame.columns = pd.MultiIndex.from_tuples(frame.columns)
        frame.index.name = None
        return frame

    def audit_frame(self, paper: dict) -> pd.DataFrame:
        """Long form for auditing: one line per reproduced number, with its source file and paper value."""
        lines = []
        for label, cells in self.rows:
            for column, cell in cells.items():
                published = paper.get(cell.paper_id) if cell.paper_id else None
                lines.append({"table": self.number, "row": label, "column": column, "reproduced": cell.value,
                              "paper": published["value"] if published else None, "ratio": cell.ratio(paper),
                              "paper_id": cell.paper_id, "source": cell.source})
        return pd.DataFrame(lines)


class Builder:
    """Makes Cells from the metric store, recording each value's file."""

    def __init__(self, metrics: MetricStore, hyperparameters: dict[str, dict], hyperparameter_files: dict[str, str]):
        self.m = metrics
        self.hp = hyperparameters
        self.hp_files = hyperparameter_files

    def metric(self, scope: str, name: str, kind: str = "g", paper_id: str | None = None, scale: float = 1.0) -> Cell:
        value = self.m.value(scope, name)
        if scale != 1.0 and isinstance(value, (int, float)):
            value = value * scale
        return Cell(value, kind, self.m.paths[(scope, name)], paper_id)

    def hyper(self, variant: str, key: str, kind: str = "text", paper_id: str | None = None) -> Cell:
        return Cell(self.hp[variant].get(key), kind, self.hp_files[variant], paper_id)


def build_tables(b: Builder) -> list[Table]:
    m = b.m
    V = lambda scope, name: m.value(scope, name)  # noqa: E731
    tables = []

    # Table 1 — dataset
    rows = [("Training Samples", {"Value": b.metric("dataset", "train_samples", "int", "t1_train_samples")}),
            ("Validation Samples", {"Value": b.metric("dataset", "validation_samples", "int", "t1_validation_samples")}),
            ("Test Samples", {"Value": b.metric("dataset", "test_samples", "int", "t1_test_samples")}),
            ("Max Sequence Length", {"Value": b.metric("dataset", "max_seq_length", "int", "t1_max_seq_length")}),
            ("Vocabulary Size", {"Value": b.metric("dataset", "vocab_size", "int", "t1_vocab_size")})]
    for split in ("train", "validation", "test"):
        rows.append((f"Non-empty rows ({split})", {"Value": b.metric("dataset", f"{split}_non_empty_rows", "int")}))
    for split in ("train", "validation", "test"):
        rows.append((f"Tokens ({split}, no padding)", {"Value": b.metric("dataset", f"{split}_tokens", "int")}))
    rows.append(("Padding efficiency (train)", {"Value": b.metric("dataset", "train_padding_efficiency", "f3")}))
    tables.append(Table(1, "Dataset statistics", ["Value"], rows, [
        "Rows are counted as the paper counts them, empty rows included; training uses only the non-empty rows.",
        "Padding efficiency: non-padding tokens / all tokens the model processes under the paper's pad-to-max_length protocol."]))

    # Table 2 — architecture
    arch = "architecture"
    rows = [("Total Parameters", {"Value": b.metric(arch, "total_params", "int", "t2_total_params")}),
            ("Hidden Dimension", {"Value": b.metric(arch, "hidden_size", "int", "t2_hidden_size")}),
            ("Number of Layers", {"Value": b.metric(arch, "num_layers", "int", "t2_num_layers")}),
            ("Number of Attention Heads", {"Value": b.metric(arch, "num_attention_heads", "int", "t2_num_attention_heads")}),
            ("Number of Key/Value Heads", {"Value": b.metric(arch, "num_key_value_heads", "int")}),
            ("Intermediate Dimension", {"Value": b.metric(arch, "intermediate_size", "int", "t2_intermediate_size")}),
            ("Vocabulary Size", {"Value": b.metric(arch, "vocab_size", "int", "t1_vocab_size")}),
            ("Tied Embeddings", {"Value": b.metric(arch, "tie_word_embeddings", "text")})]
    pa = "paper_architecture"
    tables.append(Table(2, "Model architecture parameters (read from the model config)", ["Value"], rows, [
        f"The paper's Table 2 is wrong for TinyLlama-1.1B: its real config has hidden size {V(pa, 'hidden_size'):,}, "
        f"{V(pa, 'num_attention_heads')} attention heads, {V(pa, 'num_key_value_heads')} key/value heads and "
        f"intermediate size {V(pa, 'intermediate_size'):,} (results/metrics/paper_architecture/), not 768, 12 and 3,072."]))

    # Table 3 — hyperparameters that ran
    def hp_row(label, key, pid, kind="text"):
        return (label, {"Standard FT": b.hyper("full", key, kind, f"t3_{pid}_full"),
                        "QLoRA": b.hyper("qlora", key, kind, f"t3_{pid}_qlora")})
    rows = [hp_row("Number of Epochs", "num_train_epochs", "epochs", "g"),
            hp_row("Training Batch Size", "per_device_train_batch_size", "batch", "int"),
            hp_row("Evaluation Batch Size", "per_device_eval_batch_size", "eval_batch", "int"),
            hp_row("Gradient Accumulation Steps", "gradient_accumulation_steps", "accum", "int"),
            hp_row("Maximum Steps", "max_steps", "steps", "int"),
            hp_row("Learning Rate", "learning_rate", "lr", "sci"),
            hp_row("Optimizer", "optim", "optim"),
            hp_row("Precision", "precision", "precision"),
            hp_row("Warmup Steps", "warmup_steps", "warmup", "int"),
            ("Max grad norm", {"Standard FT": b.hyper("full", "max_grad_norm", "g"), "QLoRA": b.hyper("qlora", "max_grad_norm", "g")}),
            ("Evaluation every (steps)", {"Standard FT": b.hyper("full", "eval_steps", "g"), "QLoRA": b.hyper("qlora", "eval_steps", "g")}),
            ("Checkpoint every (steps)", {"Standard FT": b.hyper("full", "save_steps", "g"), "QLoRA": b.hyper("qlora", "save_steps", "g")}),
            ("Gradient checkpointing", {"Standard FT": b.hyper("full", "gradient_checkpointing", "text"),
                                        "QLoRA": b.hyper("qlora", "gradient_checkpointing", "text")})]
    tables.append(Table(3, "Hyperparameters for standard and QLoRA fine-tuning, as they ran", ["Standard FT", "QLoRA"], rows,
                        ["Read back from the TrainingArguments and the model of each run (results/train/<variant>/hyperparameters.json).",
                         "Gradient checkpointing: the paper's notebook called prepare_model_for_kbit_training with its default "
                         "use_gradient_checkpointing=True for QLoRA (its log shows the use_cache warning) and did not use it for "
                         "standard fine-tuning; the paper's Table 3 does not mention it."]))

    # Table 4 — QLoRA configuration
    rows = [("Quantization Type", {"Value": b.hyper("qlora", "quant_type", "text", "t4_quant_type")}),
            ("Double Quantization", {"Value": b.hyper("qlora", "double_quant", "text", "t4_double_quant")}),
            ("Compute Dtype", {"Value": b.hyper("qlora", "compute_dtype", "text", "t4_compute_dtype")}),
            ("LoRA Rank (r)", {"Value": b.hyper("qlora", "lora_r", "int", "t4_lora_r")}),
            ("LoRA Alpha", {"Value": b.hyper("qlora", "lora_alpha", "g", "t4_lora_alpha")}),
            ("LoRA Dropout", {"Value": b.hyper("qlora", "lora_dropout", "g", "t4_lora_dropout")}),
            ("Target Modules", {"Value": Cell(len(b.hp["qlora"]["target_modules"]), "int", b.hp_files["qlora"], "t4_target_modules")}),
            ("Target module names", {"Value": Cell(", ".join(b.hp["qlora"]["target_modules"]), "text", b.hp_files["qlora"])})]
    tables.append(Table(4, "QLoRA configuration details, as it ran", ["Value"], rows,
                        ["Read back from the peft LoraConfig and the bitsandbytes quantization config of the QLoRA run."]))

    # Table 5 — model size, every way
    s, ps, c = "structure", "paper_structure", "comparison"
    size = lambda scope, name, pid=None: {"Value": b.metric(scope, name, "f2", pid)}  # noqa: E731
    rows = [("Standard (FP16), paper formula (MB)", size(s, "size_fp16_mb_paper", "t5_fp16_mb")),
            ("Standard (FP16), measured in memory (MB)", size("full", "model_size_memory_mb", "t5_fp16_mb")),
            ("Standard (FP16), on disk (MB)", size("full", "model_size_disk_mb", "t5_fp16_mb")),
            ("QLoRA base 4-bit, paper formula (MB)", size(s, "size_4bit_base_mb_paper", "t5_base_4bit_mb")),
            ("QLoRA adapters, paper formula (MB)", size(s, "size_adapters_mb_paper", "t5_adapters_mb")),
            ("QLoRA total, paper formula (MB)", size(s, "size_qlora_total_mb_paper", "t5_qlora_total_mb")),
            ("QLoRA total, bitsandbytes layout, analytic (MB)", size(s, "size_qlora_bnb_mb", "t5_qlora_total_mb")),
            ("QLoRA total, measured in memory (MB)", size("qlora", "model_size_memory_mb", "t5_qlora_total_mb")),
            ("QLoRA total, on disk (MB)", size("qlora", "model_size_disk_mb", "t5_qlora_total_mb")),
            ("Compression, paper formula (x)", size(c, "compression_ratio_paper_formula", "t5_compression")),
            ("Compression, bitsandbytes layout (x)", size(c, "compression_ratio_bnb_layout", "t5_compression")),
            ("Compression, measured in memory (x)", size(c, "compression_ratio_memory", "t5_compression")),
            ("Compression, on disk (x)", size(c, "compression_ratio_disk", "t5_compression")),
            ("Size reduction, paper formula (%)", size(c, "size_reduction_percent_paper_formula", "t5_reduction_percent")),
            ("Size reduction, measured in memory (%)", size(c, "size_reduction_percent_memory", "t5_reduction_percent")),
            ("Paper architecture: QLoRA total, paper formula (MB)", size(ps, "size_qlora_total_mb_paper", "t5_qlora_total_mb")),
            ("Paper architecture: QLoRA total, bitsandbytes layout (MB)", size(ps, "size_qlora_bnb_mb", "t5_qlora_total_mb")),
            ("Paper architecture: QLoRA total, measured by the paper's notebook (MB)",
             size(ps, "size_qlora_mb_notebook", "t5_qlora_total_mb")),
            ("Paper architecture: compression, paper formula (x)", size(c, "paper_arch_compression_ratio_paper_formula", "t5_compression")),
            ("Paper architecture: compression, bitsandbytes layout (x)", size(c, "paper_arch_compression_ratio_bnb_layout", "t5_compression")),
            ("Paper architecture: compression, measured by the paper's notebook (x)",
             size(c, "paper_arch_compression_ratio_notebook", "t5_compression"))]
    for variant in ("full", "qlora"):
        if m.has(f"probe_{variant}", "peak_train_memory_mb"):
            rows.append((f"{VARIANT_LABEL[variant]}: peak training memory, memory probe (MB)",
                         {"Value": b.metric(f"probe_{variant}", "peak_train_memory_mb", "f0")}))
    tables.append(Table(5, "Model size comparison: the paper's formula, measured in memory, and on disk", ["Value"], rows, [
        "MB = 1024² bytes. The paper's formula counts every parameter at 4 bits; bitsandbytes keeps embeddings, lm_head and "
        "norms in 16 bit and stores quantization constants (absmax, nested double-quant state).",
        f"Measured in memory: {m.record('qlora', 'model_size_memory_mb')['method']}",
        "Rows labelled 'Paper architecture' are computed from TinyLlama-1.1B's architecture (configs/paper.yaml) on the meta "
        "device; the notebook row is the sum of parameter bytes the authors' notebook printed (packed NF4, everything else "
        "upcast to fp32 by prepare_model_for_kbit_training).",
        "Memory-probe rows (present after `snakemake memory`): peak training memory at this profile's architecture with "
        "random weights; the method field of each file says how it was measured."]))

    # Table 6 — trainable parameters
    tp, pct = "Trainable Parameters", "Percentage (%)"
    rows = [("Standard Fine-Tuning", {tp: b.metric("full", "trainable_params", "int", "t6_trainable_full"),
                                      pct: b.metric("full", "trainable_percent", "f2", "t6_percent_full")}),
            ("QLoRA", {tp: b.metric("qlora", "trainable_params", "int", "t6_trainable_qlora"),
                       pct: b.metric("qlora", "trainable_percent", "f2", "t6_percent_qlora")}),
            ("QLoRA: reduction in trainable parameters (%)",
             {pct: b.metric("comparison", "trainable_reduction_percent", "f2", "t6_reduction_percent")}),
            ("Paper architecture: QLoRA (analytic)", {
                tp: b.metric("paper_structure", "lora_trainable_params", "int", "t6_trainable_qlora"),
                pct: b.metric("paper_structure", "lora_trainable_percent", "f2", "t6_percent_qlora")}),
            ("Paper architecture: of the packed count the paper's notebook printed", {
                tp: b.metric("paper_structure", "total_params_packed_notebook", "int"),
                pct: b.metric("paper_structure", "trainable_percent_packed_notebook", "f4", "t6_percent_qlora")}),
            ("Paper architecture: of peft's count (print_trainable_parameters)", {
                tp: b.metric("paper_structure", "total_params_peft", "int"),
                pct: b.metric("paper_structure", "trainable_percent_peft", "f4", "t6_percent_qlora")}),
            ("Paper architecture: reduction in trainable parameters (%)",
             {pct: b.metric("comparison", "paper_arch_trainable_reduction_percent", "f2", "t6_reduction_percent")})]
    tables.append(Table(6, "Parameter efficiency", [tp, pct], rows, [
        "The notebook rows give the total each count is taken of (Trainable Parameters column) and the percentage printed: "
        "numel() over a 4-bit model counts two weights per packed byte, peft counts them at their logical size and adds "
        "the LoRA weights; the paper's 1.15% divides by the unquantized total."]))

    # Table 7 — FLOPs per optimizer step
    full_col, qlora_col, red = "Standard FT (TFLOPs)", "QLoRA (TFLOPs)", "QLoRA reduction (%)"

    def flops_row(label, full, qlora, reduction=None, pid=True):
        cells = {full_col: b.metric(*full, "g", "t7_flops_full" if pid else None, scale=1e-12),
                 qlora_col: b.metric(*qlora, "g", "t7_flops_qlora" if pid else None, scale=1e-12)}
        if reduction:
            cells[red] = b.metric("comparison", reduction, "f1", "t7_reduction_percent" if pid else None)
        return (label, cells)
    rows = [flops_row("Paper formula", (s, "flops_per_step_full_paper"), (s, "flops_per_step_qlora_paper"),
                      "flops_reduction_percent_paper_formula"),
            flops_row("Model FLOPs, analytic (real tokens per step, padding included)", ("full", "flops_per_step_analytic"),
                      ("qlora", "flops_per_step_analytic"), "flops_reduction_percent_analytic"),
            flops_row("Model FLOPs, analytic, non-padding tokens only", ("full", "flops_per_step_analytic_real_tokens"),
                      ("qlora", "flops_per_step_analytic_real_tokens"), pid=False),
            flops_row("Executed FLOPs, analytic (recomputation included)", ("full", "flops_per_step_executed"),
                      ("qlora", "flops_per_step_executed"), pid=False),
            flops_row("Counted (FlopCounterMode, one real step)", ("full", "flops_per_step_counted"),
                      ("qlora", "flops_per_step_counted"), "flops_reduction_percent_counted", pid=False),
            ("Counted / executed analytic (x)", {full_col: b.metric("comparison", "flops_counted_over_executed_full", "f4"),
                                                qlora_col: b.metric("comparison", "flops_counted_over_executed_qlora", "f4")}),
            flops_row("Paper architecture, paper formula", (ps, "flops_per_step_full_paper"), (ps, "flops_per_step_qlora_paper"),
                      "paper_arch_flops_reduction_percent_paper_formula"),
            ("Paper architecture, model FLOPs per token (analytic)", {
                full_col: b.metric(ps, "flops_per_token_full_analytic", "g", scale=1e-12),
                qlora_col: b.metric(ps, "flops_per_token_qlora_analytic", "g", scale=1e-12),
                red: b.metric("comparison", "paper_arch_flops_reduction_percent_analytic", "f1", "t7_reduction_percent")})]
    tables.append(Table(7, "FLOPs per optimizer step", [full_col, qlora_col, red], rows, [
        "The paper's formula uses a hard-coded batch of 4 sequences (the real step has batch × accumulation = 8) and multiplies "
        "QLoRA's base-model FLOPs by an assumed 0.25 ('4-bit ops are 4x faster'), which is not a FLOP count.",
        "Model FLOPs (PaLM, no recomputation) are what MFU divides; executed FLOPs add flash attention's score recompute and "
        "the forward that gradient checkpointing recomputes, and are what FlopCounterMode sees."]))

    # Table 8 — MFU
    def mfu_cells(variant, label):
        return {"MFU (%)": b.metric(variant, f"mfu_{label}", "f2", f"t8_mfu_{variant}"),
                "Achieved (TFLOP/s)": b.metric(variant, f"achieved_tflops_{label}", "f4", f"t8_achieved_{variant}")}
    rows = [("Standard FT, paper protocol", mfu_cells("full", "paper")),
            ("QLoRA, paper protocol", mfu_cells("qlora", "paper")),
            ("Standard FT, model FLOPs / median step", mfu_cells("full", "analytic")),
            ("QLoRA, model FLOPs / median step", mfu_cells("qlora", "analytic")),
            ("Difference, paper protocol (points)", {"MFU (%)": b.metric("comparison", "mfu_difference_points_paper", "f2",
                                                                          "t12_mfu_improvement")}),
            ("Difference, model FLOPs (points)", {"MFU (%)": b.metric("comparison", "mfu_difference_points_analytic", "f2")}),
            ("Peak of this device (TFLOP/s)", {"Achieved (TFLOP/s)": b.metric("device", "peak_flops", "f3", scale=1e-12)})]
    tables.append(Table(8, "Mean FLOPs utilization", ["MFU (%)", "Achieved (TFLOP/s)"], rows, [
        f"Paper protocol: {m.record('full', 'mfu_paper')['method']}",
        f"Correct method: {m.record('full', 'mfu_analytic')['method']}"]))

    # Table 9 — training time
    def t(variant, name, kind="f2", pid=None):
        return b.metric(variant, name, kind, pid)
    rows = [("Total Training Time (seconds)", {"Standard FT": t("full", "train_time_s", "f2", "t9_time_full"),
                                               "QLoRA": t("qlora", "train_time_s", "f2", "t9_time_qlora")}),
            ("Time per Step (seconds)", {"Standard FT": t("full", "time_per_step_s", "f3", "t9_step_full"),
                                         "QLoRA": t("qlora", "time_per_step_s", "f3", "t9_step_qlora")}),
            ("Relative Performance (%)", {"QLoRA": t("comparison", "training_time_improvement_percent", "f1", "t9_relative")}),
            ("Median optimizer step (seconds, no evaluation or saves)", {"Standard FT": t("full", "step_time_s", "f4"),
                                                                          "QLoRA": t("qlora", "step_time_s", "f4")}),
            ("QLoRA slower per step (%)", {"QLoRA": t("comparison", "training_slowdown_percent_per_step", "f1")}),
            ("Peak training memory (MB)", {"Standard FT": t("full", "peak_train_memory_mb", "f1"),
                                           "QLoRA": t("qlora", "peak_train_memory_mb", "f1")}),
            ("Precision that ran", {"Standard FT": t("full", "precision", "text"), "QLoRA": t("qlora", "precision", "text")})]
    tables.append(Table(9, "Training performance", ["Standard FT", "QLoRA"], rows, [
        "Total time is wall clock around trainer.train(), evaluation passes and checkpoint saves included, as the paper measured "
        "it; time per step is that total / steps. Relative performance = (standard - QLoRA) / standard, the paper's formula.",
        f"Median step: {m.record('full', 'step_time_s')['method']}",
        f"Peak training memory: {m.record('full', 'peak_train_memory_mb')['method']}"]))

    # Table 10 — perplexity
    rows = [("Base model (before fine-tuning)", {"Paper protocol": b.metric("base", "perplexity_paper", "f2"),
                                                 "Token-level": b.metric("base", "perplexity_token", "f2")}),
            ("Standard Fine-Tuning", {"Paper protocol": b.metric("full", "perplexity_paper", "f2", "t10_ppl_full"),
                                      "Token-level": b.metric("full", "perplexity_token", "f2", "t10_ppl_full")}),
            ("QLoRA Fine-Tuning", {"Paper protocol": b.metric("qlora", "perplexity_paper", "f2", "t10_ppl_qlora"),
                                   "Token-level": b.metric("qlora", "perplexity_token", "f2", "t10_ppl_qlora")}),
            ("Change, QLoRA vs standard (%)", {
                "Paper protocol": b.metric("comparison", "perplexity_change_percent_paper", "f2", "t10_change"),
                "Token-level": b.metric("comparison", "perplexity_change_percent_token", "f2")})]
    notes = ["Paper protocol: first 100 non-empty test rows, each padded to max_length, padding scored, exp(mean per-sample loss). "
             "Token-level: the whole test split, sliding window, exp(total NLL / scored tokens)."]
    if "not meaningful" in m.record("full", "perplexity_token")["method"]:
        notes.insert(0, "NOT MEANINGFUL: this run used random weights (model.init: random); perplexities are reported only "
                        "to keep the table complete.")
    tables.append(Table(10, "Perplexity evaluation on the test set", ["Paper protocol", "Token-level"], rows, notes))

    # Table 11 — inference
    rows = [(VARIANT_LABEL[v], {"Inference Time (s)": b.metric(v, "inference_time_s", "f3", f"t11_time_{v}" if v != "qlora_merged" else None),
                                "Tokens/Second": b.metric(v, "tokens_per_s", "f2", f"t11_tps_{v}" if v != "qlora_merged" else None)})
            for v in ("full", "qlora", "qlora_merged")]
    rows.append(("QLoRA / standard generation time (x)", {"Inference Time (s)": b.metric(
        "comparison", "inference_slowdown_x", "f2", "t11_slowdown")}))
    rows.append(("QLoRA merged / standard generation time (x)", {"Inference Time (s)": b.metric(
        "comparison", "inference_slowdown_merged_x", "f2")}))
    tables.append(Table(11, f"Inference speed ({m.record('full', 'inference_time_s')['details']['runs']} timed runs, same prompts for every variant)",
                        ["Inference Time (s)", "Tokens/Second"], rows, [
        "QLoRA merged: the adapter folded into a dequantized 16-bit copy of the NF4 base, the form one would deploy. "
        "The paper timed standard FT on one prompt and QLoRA on three others.",
        f"Method: {m.record('full', 'inference_time_s')['method']}"]))

    tables.append(table12(b))
    return tables


def table12(b: Builder) -> Table:
    """The paper's summary, its 'Improvement' column by the paper's own formulas (comparison files)."""
    c, st, ps = "comparison", "structure", "paper_structure"

    def row(label, scope_s, scope_q, name_s, name_q, improvement, pid, fmt_kind="f2", pid_values=(None, None), scale=1.0):
        return (label, {"Standard FT": b.metric(scope_s, name_s, fmt_kind, pid_values[0], scale),
                        "QLoRA": b.metric(scope_q, name_q, fmt_kind, pid_values[1], scale),
                        "Improvement": b.metric(c, improvement, "f2", pid)})

    rows = [
        ("Total Parameters", {"Standard FT": b.metric("full", "total_params", "int", "t2_total_params"),
                              "QLoRA": b.metric("qlora", "total_params", "int", "t2_total_params")}),
        ("Total Parameters, paper architecture, as the notebook counted them",
         {"Standard FT": b.metric("paper_architecture", "total_params", "int", "t2_total_params"),
          "QLoRA": b.metric(ps, "total_params_packed_notebook", "int", "t2_total_params")}),
        row("Trainable Parameters (% fewer)", "full", "qlora", "trainable_params", "trainable_params",
            "trainable_reduction_percent", "t12_trainable_improvement", "int", ("t6_trainable_full", "t6_trainable_qlora")),
        row("Model Size (MB), paper formula (% smaller)", st, st, "size_fp16_mb_paper", "size_qlora_total_mb_paper",
            "size_reduction_percent_paper_formula", "t12_size_improvement", "f2", ("t5_fp16_mb", "t5_qlora_total_mb")),
        row("Model Size (MB), measured in memory (% smaller)", "full", "qlora", "model_size_memory_mb", "model_size_memory_mb",
            "size_reduction_percent_memory", "t12_size_improvement", "f2", ("t5_fp16_mb", "t5_qlora_total_mb")),
        ("Compression Ratio (x), paper formula", {"QLoRA": b.metric(c, "compression_ratio_paper_formula", "f2", "t12_compression")}),
        ("Compression Ratio (x), measured in memory", {"QLoRA": b.metric(c, "compression_ratio_memory", "f2", "t12_compression")}),
        ("Compression Ratio (x), paper architecture, the notebook's measurement",
         {"QLoRA": b.metric(c, "paper_arch_compression_ratio_notebook", "f2", "t12_compression")}),
        row("FLOPs per Step (TFLOPs), paper formula (% less)", st, st, "flops_per_step_full_paper", "flops_per_step_qlora_paper",
            "flops_reduction_percent_paper_formula", "t12_flops_improvement", "g", ("t7_flops_full", "t7_flops_qlora"), 1e-12),
        row("FLOPs per Step (TFLOPs), model FLOPs (% less)", "full", "qlora", "flops_per_step_analytic", "flops_per_step_analytic",
            "flops_reduction_percent_analytic", "t12_flops_improvement", "g", ("t7_flops_full", "t7_flops_qlora"), 1e-12),
        row("Mean FLOPs Utilization (%), paper protocol (points)", "full", "qlora", "mfu_paper", "mfu_paper",
            "mfu_difference_points_paper", "t12_mfu_improvement", "f2", ("t8_mfu_full", "t8_mfu_qlora")),
        row("Mean FLOPs Utilization (%), model FLOPs / median step (points)", "full", "qlora", "mfu_analytic", "mfu_analytic",
            "mfu_difference_points_analytic", "t12_mfu_improvement", "f2", ("t8_mfu_full", "t8_mfu_qlora")),
        row("Training Time (seconds) (%)", "full", "qlora", "train_time_s", "train_time_s", "training_time_improvement_percent",
            "t12_time_improvement", "f2", ("t9_time_full", "t9_time_qlora")),
        row("Inference Time (s) (%)", "full", "qlora", "inference_time_s", "inference_time_s",
            "inference_time_improvement_percent", "t12_inference_improvement", "f3", ("t11_time_full", "t11_time_qlora")),
        row("Tokens/second (%)", "full", "qlora", "tokens_per_s", "tokens_per_s", "tokens_per_s_change_percent",
            "t12_tps_improvement", "f2", ("t11_tps_full", "t11_tps_qlora")),
        row("Perplexity, paper protocol (%)", "full", "qlora", "perplexity_paper", "perplexity_paper",
            "perplexity_change_percent_paper", "t12_ppl_improvement", "f2", ("t10_ppl_full", "t10_ppl_qlora")),
        row("Perplexity, token-level (%)", "full", "qlora", "perplexity_token", "perplexity_token",
            "perplexity_change_percent_token", "t12_ppl_improvement", "f2", ("t10_ppl_full", "t10_ppl_qlora")),
    ]
    return Table(12, "Complete performance metrics comparison", ["Standard FT", "QLoRA", "Improvement"], rows, [
        "Improvement uses the paper's own formulas (results/metrics/comparison/): trainable parameters, size and FLOPs "
        "1 - q/s; training and inference time (s - q)/s; MFU q - s in percentage points; tokens/s and perplexity (q - s)/s.",
        "The paper prints the perplexity change as -18.73% here and +18.73% in Table 10; its own formula (q - s)/s gives "
        "+18.73% for its perplexities of 18.42 and 21.87. This table shows the formula's value; the Ratio column compares "
        "it with the printed -18.73%.",
        f"The notebook's own comparison table lists {fmt(b.m.value(ps, 'total_params_packed_notebook'), 'int')} total "
        "parameters for QLoRA (two 4-bit weights per packed byte, LoRA included); the paper prints "
        f"{fmt(b.m.value('paper_architecture', 'total_params'), 'int')} for both."])


def write_table(table: Table, paper: dict, csv_path: str, tex_path: str, html_path: str) -> None:
    display = table.display_frame(paper)
    table.audit_frame(paper).to_csv(csv_path, index=False)
    styler = display.style.format(escape="latex").format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    tex = styler.to_latex(hrules=True, multicol_align="c", column_format="l" + "r" * display.shape[1])
    with open(tex_path, "w") as handle:
        handle.write(tex)
    html_styler = display.style.format(escape="html").format_index(escape="html", axis=0).format_index(escape="html", axis=1)
    html_styler = html_styler.set_table_attributes(f'class="paper-table" id="table-{table.number}"')
    with open(html_path, "w") as handle:
        handle.write(html_styler.to_html())


REFERENCE_TABLE = 13


def reference_table(b: Builder, label: str) -> Table:
    """Paper scale on a GPU: the paper's Tables 5, 8, 9 and 11 beside a reference run at the paper's architecture
    and recipe (b reads the reference run's metric files)."""
    s, q, c = "Standard FT", "QLoRA", "comparison"

    def pair(label_, name, kind, pids=(None, None)):
        return (label_, {s: b.metric("full", name, kind, pids[0]), q: b.metric("qlora", name, kind, pids[1])})
    rows = [
        pair("Table 5: model in memory (MB)", "model_size_memory_mb", "f2", ("t5_fp16_mb", "t5_qlora_total_mb")),
        ("Table 5: compression in memory (x)", {q: b.metric(c, "compression_ratio_memory", "f2", "t5_compression")}),
        pair("Peak training memory (MB)", "peak_train_memory_mb", "f0"),
        ("Peak training memory, standard / QLoRA (x)", {q: b.metric(c, "peak_memory_ratio", "f2", "t5_compression")}),
        pair("Table 8: MFU, paper protocol (%)", "mfu_paper", "f2", ("t8_mfu_full", "t8_mfu_qlora")),
        pair("Table 8: achieved, paper protocol (TFLOP/s)", "achieved_tflops_paper", "f2",
             ("t8_achieved_full", "t8_achieved_qlora")),
        pair("Table 8: MFU, model FLOPs / median step (%)", "mfu_analytic", "f2"),
        pair("Table 9: total training time (s)", "train_time_s", "f1", ("t9_time_full", "t9_time_qlora")),
        pair("Table 9: time per step (s)", "time_per_step_s", "f3", ("t9_step_full", "t9_step_qlora")),
        ("Table 9: relative performance (%)", {q: b.metric(c, "training_time_improvement_percent", "f1", "t9_relative")}),
        pair("Median optimizer step (s)", "step_time_s", "f4"),
        pair("Table 11: inference time (s)", "inference_time_s", "f3", ("t11_time_full", "t11_time_qlora")),
        pair("Table 11: tokens/s", "tokens_per_s", "f2", ("t11_tps_full", "t11_tps_qlora")),
        ("Table 11: QLoRA / standard generation time (x)", {q: b.metric(c, "inference_slowdown_x", "f2", "t11_slowdown")}),
    ]
    device = b.m.record("device", "peak_flops")["details"]
    return Table(REFERENCE_TABLE, f"Paper scale on a GPU: reference run {label}", [s, q], rows, [
        f"Measured on {device.get('gpu') or 'an unnamed GPU'} (results of the reference run in reference/{label}/); the "
        "paper used a Tesla T4, so absolute times and MFU do not compare, ratios may. Perplexity is not part of it."])
