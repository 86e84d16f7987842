"""Rule figure1: the 2x3 bar grid, Standard FT vs QLoRA, from the metric files only."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from qrepro.metrics_io import CONTAMINATED_MARK, MetricStore  # noqa: E402
from qrepro.runlog import log_to  # noqa: E402

inp, out = snakemake.input, snakemake.output  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    plt.style.use(inp.style)
    m = MetricStore.load(list(inp.metrics))

    def pair(metric):
        return ("full", metric), ("qlora", metric)

    panels = [
        ("(1) Model size (MB)", {"paper formula": (("structure", "size_fp16_mb_paper"), ("structure", "size_qlora_total_mb_paper")),
                                 "measured": pair("model_size_memory_mb")}, False),
        ("(2) Training time per step (s)", {"wall clock / steps (paper)": pair("time_per_step_s"),
                                            "median step": pair("step_time_s")}, False),
        ("(3) Trainable parameters (log)", {"": pair("trainable_params")}, True),
        ("(4) Perplexity (log)", {"paper protocol": pair("perplexity_paper"), "token-level": pair("perplexity_token")}, True),
        ("(5) MFU (%)", {"paper protocol": pair("mfu_paper"), "model FLOPs / median step": pair("mfu_analytic")}, False),
        ("(6) Inference speed (tokens/s)", {"": pair("tokens_per_s")}, False),
    ]

    def spread(key):
        """The sd over training seeds (an error bar) where the file has several seeds' values, else 0."""
        return m.record(*key).get("seeds", {}).get("sd", 0.0)

    seeded = sorted({m.record(*key)["seeds"]["n"] for _, groups, _ in panels for keys in groups.values() for key in keys
                     if spread(key) > 0})
    fig, axes = plt.subplots(2, 3)
    for ax, (title, groups, log) in zip(axes.flat, panels):
        x = np.arange(len(groups))
        width = 0.38
        for offset, (label, index) in zip((-width / 2, width / 2), (("Standard FT", 0), ("QLoRA", 1))):
            values = [m.value(*keys[index]) for keys in groups.values()]
            errors = [spread(keys[index]) for keys in groups.values()]
            marks = [CONTAMINATED_MARK if m.contaminated(*keys[index]) else "" for keys in groups.values()]
            bars = ax.bar(x + offset, values, width, label=label, yerr=errors if any(errors) else None, capsize=3)
            ax.bar_label(bars, labels=[f"{v:,.3g}{mark}" for v, mark in zip(values, marks)], fontsize=8, padding=2)
        ax.set_xticks(x, list(groups))
        # a panel that shows a contaminated number carries the mark (the legend: the caption, prose.j2)
        tainted = any(m.contaminated(*key) for keys in groups.values() for key in keys)
        ax.set_title(title + (f" {CONTAMINATED_MARK}" if tainted else ""))
        if log:
            ax.set_yscale("log")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    title = "Figure 1: Standard fine-tuning vs QLoRA (reproduced)"
    if seeded:  # bars are means over the training seeds, error bars their sd
        title += (f"\nerror bars: sd over {', '.join(map(str, seeded))} training seeds, where a bar is their mean "
                  "(size and inference: the first seed's models)")
    fig.suptitle(title, x=0.4)
    fig.tight_layout(rect=(0, 0, 1, 0.92 if seeded else 0.95))
    fig.legend(handles, labels, loc="upper right", ncol=2)
    fig.savefig(out.png)
    fig.savefig(out.pdf, metadata={"CreationDate": None})  # no timestamp: the same figure, the same bytes
