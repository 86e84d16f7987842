"""The page-one summary as facts: what ran, the verdict tally, the headline comparisons at this scale and the caveats
that change their reading. Every decision is made here, from the metric files, the claims' verdicts, the training
runs' hyperparameters and the paper's setup; templates/prose.j2 (summary_*) only words the facts."""
from __future__ import annotations

from dataclasses import dataclass

from qrepro.metrics_io import MetricStore
from qrepro.report.claims import INCONCLUSIVE, NOT_COMPARABLE, NOT_REPRODUCED, REPRODUCED

VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_COMPARABLE)
GPU_NEEDS = ("gpu_paper_architecture", "paper_setup")  # what a claim no CPU run can judge needs (claims.yaml judged_on)


@dataclass(frozen=True)
class Headline:
    """One comparison page one shows. key: the metric file; null: its value for "no difference"; claimed: the side of
    null the paper (or QLoRA's purpose, where the paper prints no figure) puts it on; paper: its paper_values.yaml
    entry; exact: a count or an arithmetic result, with no noise to measure."""
    id: str
    key: str
    null: float
    claimed: str  # "above" | "below"
    paper: str | None = None
    exact: bool = False


HEADLINES = (
    Headline("perplexity", "comparison/perplexity_change_percent_token", 0.0, "above", "t10_change"),
    Headline("training", "comparison/training_slowdown_percent_per_step", 0.0, "above", "t9_longer_percent"),
    Headline("peak_memory", "comparison/peak_memory_ratio", 1.0, "above"),
    Headline("inference", "comparison/inference_slowdown_x", 1.0, "above", "t11_slowdown"),
    Headline("compression", "comparison/compression_ratio_memory", 1.0, "above", "t5_compression", exact=True),
    Headline("trainable", "qlora/trainable_percent", 100.0, "below", "t6_percent_qlora", exact=True),
)


def side(value: float, null: float) -> str:
    return "above" if value > null else "below" if value < null else "equal"


def contaminated(record: dict) -> bool:
    """Whether a timed file says outside load was observed while it was measured (or marks itself contaminated)."""
    details = record.get("details", {})
    return bool(record.get("contaminated") or details.get("outside_load_observed")
                or details.get("observed_load", {}).get("outside_load_observed"))


def inputs_contaminated(m: MetricStore, key: str) -> list[str]:
    """The file, or the files a comparison divides (details.a, details.b), that are contaminated."""
    record = m.record(*key.split("/"))
    keys = [key] + [record["details"][ab]["metric"] for ab in ("a", "b")
                    if isinstance(record.get("details", {}).get(ab), dict)]
    return [k for k in keys if m.has(*k.split("/")) and contaminated(m.record(*k.split("/")))]


def headline(m: MetricStore, h: Headline) -> dict:
    """The comparison's value, its side of "no difference", whether that is the paper's side, and whether its interval
    excludes no difference (None: no interval)."""
    record = m.record(*h.key.split("/"))
    value, interval = record["value"], record.get("interval")
    excludes = None if interval is None else not interval["low"] <= h.null <= interval["high"]
    return {"id": h.id, "key": h.key, "value": value, "unit": record["unit"], "null": h.null, "side": side(value, h.null),
            "paper_way": side(value, h.null) == h.claimed, "paper": h.paper, "interval": interval,
            "excludes_null": excludes, "exact": h.exact, "contaminated": inputs_contaminated(m, h.key)}


def tally(claims: list[dict]) -> list[dict]:
    """Every verdict in a fixed order with its count, and its claims grouped by basis (what judged them, or what a
    claim no run could judge needs)."""
    rows = []
    for verdict in VERDICTS:
        groups: dict[tuple, dict] = {}
        for c in (c for c in claims if c["verdict"] == verdict):
            basis = c["basis"]["kind"] if verdict != NOT_COMPARABLE else "needs " + c["basis"]["needs"]
            run = c["basis"]["run"] if basis == "reference" else None
            groups.setdefault((basis, run), {"basis": basis, "run": run, "numbers": []})["numbers"].append(c["number"])
        count = sum(len(g["numbers"]) for g in groups.values())
        rows.append({"verdict": verdict, "count": count, "groups": list(groups.values())})
    return rows


# hyperparameters.json fields and the paper's Table 3 entries (t3_<entry>_<variant>) and Table 4 entries (t4_<entry>)
TABLE3 = {"max_steps": "steps", "per_device_train_batch_size": "batch", "per_device_eval_batch_size": "eval_batch",
          "gradient_accumulation_steps": "accum", "learning_rate": "lr", "warmup_steps": "warmup"}
TABLE4 = {"lora_r": "lora_r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout"}


def hyperparameter_differences(hyperparameters: dict, paper_values: dict[str, dict]) -> list[dict]:
    """The numbers of the paper's Tables 3 and 4 that a run's hyperparameters.json (read back from its
    TrainingArguments and LoraConfig) does not match: one entry per field, variant "both" where the two variants
    ran the same value against the same paper value."""
    found: dict[str, dict] = {}
    for variant in ("full", "qlora"):
        table = {field: f"t3_{entry}_{variant}" for field, entry in TABLE3.items()}
        if variant == "qlora":
            table |= {field: f"t4_{entry}" for field, entry in TABLE4.items()}
        for field, paper_id in table.items():
            ran, published = hyperparameters[variant][field], paper_values[paper_id]["value"]
            if ran == published:
                continue
            same = found.get(field)
            if same and same["ran"] == ran and same["paper"] == published:
                same["variant"] = "both"
            else:
                found[field if field not in found else f"{field} {variant}"] = {
                    "what": "hyperparameter", "key": field, "variant": variant, "ran": ran, "paper": published,
                    "paper_id": paper_id}
    return list(found.values())


def recipe_differences(m: MetricStore, hyperparameters: dict, paper: dict, paper_values: dict[str, dict]) -> list[dict]:
    """Where this run's training recipe differs from the paper's, read from the files: the numbers of its Tables 3
    and 4, the precision and sequence length (configs/paper.yaml), packing, the checkpoints saved and the paged
    optimizer. Each: what, the file or field it is read from, this run's value and the paper's."""
    found = hyperparameter_differences(hyperparameters, paper_values)
    for what, key, paper_value in (("precision", "full/precision", paper["precision"]),
                                   ("sequence length", "dataset/max_seq_length", paper["max_length"]),
                                   ("packing", "dataset/packing", False)):
        if m.has(*key.split("/")) and m.value(*key.split("/")) != paper_value:
            found.append({"what": what, "key": key, "ran": m.value(*key.split("/")), "paper": paper_value})
    saves = m.record("full", "train_time_s")["details"].get("saves_at_steps", [])
    if saves != [paper["max_steps"]]:
        found.append({"what": "checkpoints", "key": "full/train_time_s", "ran": len(saves), "paper": 1,
                      "path": str(m.paths[("full", "train_time_s")])})
    qlora = hyperparameters["qlora"]
    if "paged" in qlora["optim"] and qlora["optimizer_paged_tensors"] < qlora["optimizer_state_tensors"]:
        found.append({"what": "paged optimizer", "key": "optimizer_ran", "ran": qlora["optimizer_ran"],
                      "paper": qlora["optim"]})
    return found


def outside_load(m: MetricStore) -> list[dict]:
    """The timed files that observed outside load (or are marked contaminated), grouped by the timed block they share
    (the same details.observed_load): each group's files, the first one's path and the outside cores it observed."""
    groups: dict[str, list[str]] = {}
    for (scope, metric), record in sorted(m.records.items()):
        if record.get("timing") and contaminated(record):
            load = record.get("details", {}).get("observed_load", {})
            groups.setdefault(repr(sorted(load.items())) if load else f"{scope}/{metric}", []).append(f"{scope}/{metric}")
    jobs = []
    for keys in groups.values():
        load = m.record(*keys[0].split("/")).get("details", {}).get("observed_load", {})
        jobs.append({"keys": keys, "path": str(m.paths[tuple(keys[0].split("/"))]),
                     "cores": load.get("outside_cores_mean")})
    return jobs


def caveats(m: MetricStore, run: dict, claims: list[dict], hyperparameters: dict, paper: dict,
            paper_values: dict[str, dict]) -> list[dict]:
    """The caveats that change the reading of page one, each present exactly when its condition holds. paper: the
    paper's setup (configs/paper.yaml), paper_values: its published numbers (paper/paper_values.yaml)."""
    found = []
    stand_in = m.value("architecture", "total_params") != m.value("paper_architecture", "total_params")
    differences = recipe_differences(m, hyperparameters, paper, paper_values)
    if stand_in or differences:
        found.append({"kind": "scale", "stand_in": stand_in, "pretrained_here": run["model_source"] == "pretrain",
                      "differences": differences})
    if run["init"] == "random":
        found.append({"kind": "random_weights"})
    rates = {v: hyperparameters[v]["learning_rate"] for v in ("full", "qlora")}
    if rates["full"] != rates["qlora"]:
        as_paper = rates == {v: paper_values[f"t3_lr_{v}"]["value"] for v in ("full", "qlora")}
        found.append({"kind": "learning_rates", **rates, "ratio": rates["qlora"] / rates["full"], "as_paper": as_paper})
    if len(run["seeds"]) == 1:
        found.append({"kind": "one_seed", "seed": run["seeds"][0]})
    loaded = outside_load(m)
    if loaded:
        found.append({"kind": "outside_load", "jobs": loaded})
    gpu = [c["number"] for c in claims if c["verdict"] == NOT_COMPARABLE and c["basis"]["needs"] in GPU_NEEDS]
    if gpu:
        found.append({"kind": "gpu_claims", "numbers": gpu})
    return found


def summary(m: MetricStore, run: dict, claims: list[dict], hyperparameters: dict, paper: dict,
            paper_values: dict[str, dict]) -> dict:
    """Everything page one says, as facts (templates/prose.j2, summary_*)."""
    return {"tally": tally(claims), "claims": len(claims), "headlines": [headline(m, h) for h in HEADLINES],
            "caveats": caveats(m, run, claims, hyperparameters, paper, paper_values),
            "recipe_differences": recipe_differences(m, hyperparameters, paper, paper_values)}
