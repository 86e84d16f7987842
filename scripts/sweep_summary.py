"""Rule sweep_summary: a sweep's choice and comparisons. Each variant's best point is the one with the lowest
validation perplexity (qrepro.sweep.choose; the test split is never read for it); QLoRA vs standard is then
compared on the test split, at the profile's recipe and at each variant's best, with the main comparison's formula
and paired bootstrap (qrepro.derived.comparison_records)."""
from qrepro.derived import Comparison, comparison_records
from qrepro.metrics_io import MetricStore, read_json, read_metric, write_metrics
from qrepro.runlog import log_to
from qrepro.sweep import Sweep, choose

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    sweep = Sweep(**{**p.sweep, "variants": tuple(p.sweep["variants"])})
    validation = {point: read_metric(files["validation"]) for point, files in p.files.items()}
    records, chosen = {}, {}
    for variant in sweep.variants:
        choice = choose({point: record["value"] for point, record in validation.items()}, sweep, variant)
        chosen[variant] = choice["point"]
        names = sweep.point_names(variant)
        edge_text = "; ".join(f"{e['key']} at its {e['side']} grid value {e['value']}" for e in choice["edges"])
        records[f"best_point_{variant}"] = dict(
            value=choice["point"], inputs=[p.files[name]["validation"] for name in names],
            details={**choice, "keys": {c: k.replace("{variant}", variant) for c, k in sweep.keys.items()},
                     "validation_perplexity": validation[choice["point"]]["value"],
                     "recipe_point": p.recipe[variant],
                     "recipe_values": {c: sweep.point(p.recipe[variant])[c] for c in sweep.columns},
                     "points": [{"point": name, "values": {c: sweep.point(name)[c] for c in sweep.columns},
                                 "validation_perplexity": validation[name]["value"],
                                 "file": p.files[name]["validation"]} for name in names]},
            method_fields={"sweep": sweep.name, "description": sweep.description, "points": len(names),
                           "edge_text": f"here: {edge_text}" if edge_text else "here: not at an edge"})
    for role, points in (("recipe", p.recipe), ("tuned", chosen)):
        store = MetricStore()  # each variant's test perplexity at its point of this role, as scope variant
        for variant, point in points.items():
            store.records[(variant, "perplexity_token")] = read_metric(p.files[point]["test"])
            store.paths[(variant, "perplexity_token")] = p.files[point]["test"]
        name = f"perplexity_change_percent_token_{role}"
        comparison = Comparison(name, "change", ("qlora", "perplexity_token"), ("full", "perplexity_token"),
                                f"QLoRA's test perplexity relative to standard's, {role} points")
        audits = {p.files[point]["audit"]: read_json(p.files[point]["audit"]) for point in points.values()}
        record = comparison_records(store, [comparison], [], audits, p.level)[name]
        record["details"] = {**record["details"], "points": dict(points)}
        cluster_unit = store.record("qlora", "perplexity_token")["details"]["bootstrap"]["unit"]
        records[name] = {**record, "method_fields": {"sweep": sweep.name, "a_point": points["qlora"],
                                                     "b_point": points["full"], "cluster_unit": cluster_unit}}
    write_metrics(p.metrics, records)
