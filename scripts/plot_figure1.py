"""Rule figure1: the 2x3 bar grid, Standard FT vs QLoRA, from the metric files only."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from qrepro.metrics_io import MetricStore  # noqa: E402
from qrepro.runlog import log_to  # noqa: E402

inp, out = snakemake.input, snakemake.output  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    plt.style.use(inp.style)
    m = MetricStore.load(list(inp.metrics))
    V = m.value
    panels = [
        ("(1) Model size (MB)", {"paper formula": (V("structure", "size_fp16_mb_paper"), V("structure", "size_qlora_total_mb_paper")),
                                 "measured": (V("full", "model_size_memory_mb"), V("qlora", "model_size_memory_mb"))}, False),
        ("(2) Training time per step (s)", {"wall clock / steps (paper)": (V("full", "time_per_step_s"), V("qlora", "time_per_step_s")),
                                            "median step": (V("full", "step_time_s"), V("qlora", "step_time_s"))}, False),
        ("(3) Trainable parameters (log)", {"": (V("full", "trainable_params"), V("qlora", "trainable_params"))}, True),
        ("(4) Perplexity (log)", {"paper protocol": (V("full", "perplexity_paper"), V("qlora", "perplexity_paper")),
                                  "token-level": (V("full", "perplexity_token"), V("qlora", "perplexity_token"))}, True),
        ("(5) MFU (%)", {"paper protocol": (V("full", "mfu_paper"), V("qlora", "mfu_paper")),
                         "model FLOPs / median step": (V("full", "mfu_analytic"), V("qlora", "mfu_analytic"))}, False),
        ("(6) Inference speed (tokens/s)", {"": (V("full", "tokens_per_s"), V("qlora", "tokens_per_s"))}, False),
    ]
    fig, axes = plt.subplots(2, 3)
    for ax, (title, groups, log) in zip(axes.flat, panels):
        x = np.arange(len(groups))
        width = 0.38
        for offset, (label, index) in zip((-width / 2, width / 2), (("Standard FT", 0), ("QLoRA", 1))):
            values = [pair[index] for pair in groups.values()]
            bars = ax.bar(x + offset, values, width, label=label)
            ax.bar_label(bars, labels=[f"{v:,.3g}" for v in values], fontsize=8, padding=2)
        ax.set_xticks(x, list(groups))
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.suptitle("Figure 1: Standard fine-tuning vs QLoRA (reproduced)")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.legend(handles, labels, loc="upper right", ncol=2)
    fig.savefig(out.png)
    fig.savefig(out.pdf)
