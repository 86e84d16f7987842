"""Figure data: the six panels of Figure 1 and the two radar normalizations of Figure 2."""
from __future__ import annotations

from .collect import MetricStore

RADAR_AXES = ["Memory", "Training speed", "Parameter efficiency", "Quality", "Inference speed", "MFU"]


def paper_radar(s: dict, q: dict) -> tuple[list[float], list[float]]:
    """The paper's normalization, exactly (PROTOCOL.md): Standard is a constant 0.5 on every axis."""
    standard = [0.5] * 6
    qlora = [1 - q["size"] / s["size"],
             s["time"] / max(s["time"], q["time"]),
             1 - q["params"] / s["params"],
             min(s["ppl"], q["ppl"]) / max(s["ppl"], q["ppl"]),
             q["tps"] / max(s["tps"], q["tps"]),
             q["mfu"] / max(s["mfu"], q["mfu"])]
    return standard, qlora


def consistent_radar(s: dict, q: dict) -> tuple[list[float], list[float]]:
    """Both variants normalized the same way: best value = 1 on every axis (lower-is-better axes use min/x)."""
    def lower_better(key):
        best = min(s[key], q[key])
        return best / s[key], best / q[key]

    def higher_better(key):
        best = max(s[key], q[key])
        return s[key] / best, q[key] / best

    pairs = [lower_better("size"), lower_better("time"), lower_better("params"), lower_better("ppl"),
             higher_better("tps"), higher_better("mfu")]
    return [a for a, _ in pairs], [b for _, b in pairs]


def radar_inputs(m: MetricStore, method: str) -> tuple[dict, dict]:
    """Values per variant for the radar; method 'paper' uses the paper's protocol, 'correct' the measured ones."""
    V = m.value
    if method == "paper":
        size = {"full": V("structure", "size_fp16_mb_paper"), "qlora": V("structure", "size_qlora_total_mb_paper")}
        ppl, mfu = "perplexity_paper", "mfu_paper"
    else:
        size = {v: V(v, "model_size_memory_mb") for v in ("full", "qlora")}
        ppl, mfu = "perplexity_token", "mfu_analytic"
    out = {}
    for v in ("full", "qlora"):
        out[v] = {"size": size[v], "time": V(v, "train_time_s"), "params": V(v, "trainable_params"),
                  "ppl": V(v, ppl), "tps": V(v, "tokens_per_s"), "mfu": V(v, mfu)}
    return out["full"], out["qlora"]
