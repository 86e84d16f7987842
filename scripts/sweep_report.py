"""Rule sweep_report: a sweep's table (CSV for auditing, LaTeX, HTML: every point's validation and test perplexity,
the chosen and the recipe points marked, and the two test comparisons) and its figure (validation and test
perplexity against the swept setting, one line per variant, chosen points marked), from the metric files only."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from qrepro.metrics_io import MetricStore, read_metric  # noqa: E402
from qrepro.catalogue import CellSpec  # noqa: E402
from qrepro.report.tables import Sources, Table, cell, write_table  # noqa: E402
from qrepro.runlog import log_to  # noqa: E402
from qrepro.sweep import Sweep  # noqa: E402

LABELS = {"full": "Standard FT", "qlora": "QLoRA"}
SPLITS = {"validation": "Validation perplexity", "test": "Test perplexity"}

inp, out = snakemake.input, snakemake.output  # noqa: F821
p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    sweep = Sweep(**{**p.sweep, "variants": tuple(p.sweep["variants"])})
    summary = MetricStore.load(list(inp.summary))
    chosen = {v: summary.value("sweep", f"best_point_{v}") for v in sweep.variants}
    recipe = {v: summary.record("sweep", f"best_point_{v}")["details"]["recipe_point"] for v in sweep.variants}
    # one store for the table's cells: each point's files under a scope of its own (p0, p1, ...), the summary's
    store = MetricStore(records=dict(summary.records), paths=dict(summary.paths))
    scopes = {}
    for i, name in enumerate(sweep.point_names()):
        scopes[name] = f"p{i}"
        for split in SPLITS:
            path = p.files[name][split]
            store.records[(f"p{i}", split)], store.paths[(f"p{i}", split)] = read_metric(path), path
    sources = Sources(store)

    def label(name):
        point = sweep.point(name)
        marks = [m for m, on in (("chosen", chosen[point["variant"]] == name),
                                 ("recipe", recipe[point["variant"]] == name)) if on]
        values = ", ".join(f"{c} {point[c]:g}" if isinstance(point[c], float) else f"{c} {point[c]}"
                           for c in sweep.columns)
        return f"{LABELS[point['variant']]}, {values}" + (f" ({', '.join(marks)})" if marks else "")

    rows = [(label(name), {SPLITS[s]: cell(CellSpec.parse(f"{scopes[name]}/{s}|f2"), sources) for s in SPLITS})
            for name in sweep.point_names()]
    rows += [("QLoRA vs standard, test, at the recipe (%)",
              {SPLITS["test"]: cell(CellSpec.parse("sweep/perplexity_change_percent_token_recipe|+f2"), sources)}),
             ("QLoRA vs standard, test, each at its best (%)",
              {SPLITS["test"]: cell(CellSpec.parse("sweep/perplexity_change_percent_token_tuned|+f2"), sources)})]
    table = Table(0, f"Sweep {sweep.name}: {sweep.description}", list(SPLITS.values()), rows)
    write_table(table, {}, out.csv, out.tex, out.html)

    plt.style.use(inp.style)
    x_column = sweep.columns[0] if len(sweep.columns) == 1 else None  # one swept setting: its values on the x axis
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    for ax, split in zip(axes, SPLITS):
        for variant in sweep.variants:
            names = sweep.point_names(variant)
            xs = [sweep.point(n)[x_column] if x_column else i for i, n in enumerate(names)]
            records = [store.record(scopes[n], split) for n in names]
            ys = [r["value"] for r in records]
            errors = [[y - r["interval"]["low"] for y, r in zip(ys, records)],
                      [r["interval"]["high"] - y for y, r in zip(ys, records)]]
            line = ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=LABELS[variant])
            best = names.index(chosen[variant])
            ax.plot([xs[best]], [ys[best]], marker="*", markersize=16, color=line[0].get_color(), linestyle="none",
                    label=f"{LABELS[variant]}: chosen (lowest validation)")
            at = names.index(recipe[variant])
            ax.plot([xs[at]], [ys[at]], marker="s", markersize=11, markerfacecolor="none",
                    color=line[0].get_color(), linestyle="none", label=f"{LABELS[variant]}: the profile's recipe")
        numeric = x_column and all(isinstance(v, (int, float)) and v > 0 for v in sweep.values[x_column])
        if numeric and max(sweep.values[x_column]) / min(sweep.values[x_column]) >= 10:
            ax.set_xscale("log")
        if x_column:  # the grid's own values as the ticks
            ax.set_xticks(sweep.values[x_column], [f"{v:g}" for v in sweep.values[x_column]])
            ax.minorticks_off()
        ax.set_xlabel(sweep.keys[x_column].replace("{variant}", "<variant>") if x_column else "point")
        ax.set_ylabel(f"token-level perplexity, {split} split")
        ax.set_title(SPLITS[split])
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    level = store.record(scopes[sweep.point_names()[0]], "test")["interval"]["level"]
    fig.suptitle(f"Sweep {sweep.name}: {sweep.description} (chosen by validation perplexity; bars: {level:.0%} "
                 "intervals)")
    fig.tight_layout(rect=(0, 0.14, 1, 0.95))
    fig.savefig(out.png)
    fig.savefig(out.pdf, metadata={"CreationDate": None})  # no timestamp: the same figure, the same bytes
