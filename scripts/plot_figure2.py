"""Rule figure2: the radar, with the paper's normalization and with a consistent one, side by side."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from qrepro.collect import MetricStore  # noqa: E402
from qrepro.figures import RADAR_AXES, consistent_radar, paper_radar, radar_inputs  # noqa: E402
from qrepro.runlog import log_to  # noqa: E402

inp, out = snakemake.input, snakemake.output  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    plt.style.use(inp.style)
    m = MetricStore.load(list(inp.metrics))
    angles = np.linspace(0, 2 * np.pi, len(RADAR_AXES), endpoint=False).tolist()
    fig, axes = plt.subplots(1, 2, subplot_kw={"projection": "polar"}, figsize=(12, 5.5))
    charts = [("Paper's normalization (Standard fixed at 0.5)", paper_radar(*radar_inputs(m, "paper"))),
              ("Consistent normalization (best = 1, measured values)", consistent_radar(*radar_inputs(m, "correct")))]
    for ax, (title, (standard, qlora)) in zip(axes, charts):
        for label, values in (("Standard FT", standard), ("QLoRA", qlora)):
            closed = values + values[:1]
            ax.plot(angles + angles[:1], closed, label=label, linewidth=2)
            ax.fill(angles + angles[:1], closed, alpha=0.15)
        ax.set_xticks(angles, RADAR_AXES)
        ax.set_ylim(0, 1)
        ax.set_title(title, pad=18)
    axes[0].legend(loc="lower left", bbox_to_anchor=(-0.15, -0.12))
    fig.suptitle("Figure 2: Normalized performance profile (higher is better)")
    fig.savefig(out.png)
    fig.savefig(out.pdf)
