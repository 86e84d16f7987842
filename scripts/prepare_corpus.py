"""Rule corpus: raw train/validation/test (+ pretrain) rows from the configured source."""
from qrepro.data import load_raw, save
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821 (injected by Snakemake)
with log_to(snakemake.log[0]):  # noqa: F821
    raw = load_raw(p.source, seed=p.seed, synthetic=p.synthetic, hf=p.hf, local_dir=p.local_dir)
    print(raw)
    save(raw, snakemake.output.raw)  # noqa: F821
