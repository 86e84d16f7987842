"""Rule figure3 (beyond the paper): QLoRA's compression by the paper's formula and by the bitsandbytes layout, and the
training state of full AdamW against QLoRA, for published models, from the metric files only."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from qrepro.metrics_io import MetricStore  # noqa: E402
from qrepro.runlog import log_to  # noqa: E402

inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    plt.style.use(inp.style)
    m = MetricStore.load(list(inp.metrics))
    scopes = sorted((scope for scope, metric in m.records if metric == "total_params"),
                    key=lambda scope: m.value(scope, "total_params"))
    names = [m.record(s, "total_params")["details"]["published"]["hub_id"].split("/")[-1] for s in scopes]
    x = np.arange(len(scopes))
    width = 0.38
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for offset, metric, label in ((-width / 2, "compression_ratio_paper_formula", "paper formula (all weights 4-bit)"),
                                  (width / 2, "compression_ratio_bnb_layout", "bitsandbytes layout (analytic)")):
        values = [m.value(s, metric) for s in scopes]
        bars = left.bar(x + offset, values, width, label=label)
        left.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=2)
    left.axhline(p.paper_compression, color="black", linestyle="--", linewidth=1,
                 label=f"the paper's published {p.paper_compression:g}x")
    left.set_ylabel("16-bit size / QLoRA size (x)")
    left.set_title("(1) Compression of QLoRA over the 16-bit model")
    left.set_ylim(0, 5.2)  # room above the bars for the legend
    left.legend(loc="upper center", ncol=2, fontsize=7)
    for offset, metric, label in ((-width / 2, "training_state_full_gb", "full fine-tuning, AdamW"),
                                  (width / 2, "training_state_qlora_gb", "QLoRA, paged AdamW 8-bit")):
        values = [m.value(s, metric) for s in scopes]
        bars = right.bar(x + offset, values, width, label=label)
        right.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=7, padding=2)
    right.set_yscale("log")
    right.set_ylabel("weights, gradients and optimizer states (GB, log)")
    right.set_title("(2) Training state, activations aside")
    right.set_ylim(top=right.get_ylim()[1] * 8)  # room above the bars for the legend
    right.legend(loc="upper left", fontsize=7)
    for ax in (left, right):
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    fig.suptitle("Figure 3: beyond the paper, published models from their architectures alone (in order of size)")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(out.png)
    fig.savefig(out.pdf, metadata={"CreationDate": None})  # no timestamp: the same figure, the same bytes
