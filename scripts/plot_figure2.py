"""Rule figure2: the radar, with the paper's normalization and with a consistent one, side by side.
Every point is a comparison file (results/metrics/comparison/radar_*.json); nothing is computed here."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from qrepro.derived import radar_name  # noqa: E402
from qrepro.metrics_io import CONTAMINATED_MARK, MetricStore  # noqa: E402
from qrepro.runlog import log_to  # noqa: E402

inp, out, p = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    plt.style.use(inp.style)
    m = MetricStore.load(list(inp.metrics))
    names, labels = [axis for axis, _ in p.axes], [label for _, label in p.axes]
    point = lambda method, variant: [m.value("comparison", radar_name(method, variant, a)) for a in names]  # noqa: E731
    # an axis whose point in a chart comes from a contaminated number is marked there (the legend: the caption)
    tainted = lambda method, variants: [  # noqa: E731
        any(m.contaminated("comparison", radar_name(method, variant, a)) for variant in variants) for a in names]
    charts = [(f"The paper's normalization\n(standard fixed at {p.paper_standard}; not higher = better on every axis)",
               [p.paper_standard] * len(names), point("paper", "qlora"), tainted("paper", ("qlora",))),
              ("Consistent normalization\n(better of the two = 1, correct methods: higher is better)",
               point("consistent", "full"), point("consistent", "qlora"), tainted("consistent", ("full", "qlora")))]
    angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False)
    fig, axes = plt.subplots(1, 2, subplot_kw={"projection": "polar"}, figsize=(13, 6.2))
    for ax, (title, standard, qlora, marked) in zip(axes, charts):
        for label, values in (("Standard FT", standard), ("QLoRA", qlora)):
            closed = np.append(values, values[0])
            ax.plot(np.append(angles, angles[0]), closed, label=label, linewidth=2)
            ax.fill(np.append(angles, angles[0]), closed, alpha=0.15)
        ax.set_xticks(angles, [label + (f" {CONTAMINATED_MARK}" if mark else "")
                               for label, mark in zip(labels, marked)])
        ax.tick_params(axis="x", pad=14)
        ax.set_ylim(0, 1)
        ax.set_yticks([0.25, 0.5, 0.75, 1.0], ["0.25", "0.5", "0.75", "1"], fontsize=7, color="0.4")
        ax.set_rlabel_position(360 / len(names) / 2)  # between the first two axes, off the plotted lines
        ax.set_title(title, pad=34)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
    fig.suptitle("Figure 2: Normalized performance profile")
    fig.subplots_adjust(left=0.06, right=0.94, wspace=0.55, top=0.80, bottom=0.12)
    fig.savefig(out.png)
    fig.savefig(out.pdf, metadata={"CreationDate": None})  # no timestamp: the same figure, the same bytes
