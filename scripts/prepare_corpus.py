"""Rule corpus: raw train/validation/test (+ pretrain) rows from the configured source, checked before
anything is written (qrepro.data.checks): a bad split fails here with one message naming the file."""
import sys

from qrepro.data.splits import load_corpus, save_corpus
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821 (injected by Snakemake)
with log_to(snakemake.log[0]):  # noqa: F821
    corpus = load_corpus(p.source, seed=p.seed, synthetic=p.synthetic, hf=p.hf, local_dir=p.local_dir,
                         max_length=p.max_length, packing=p.packing, need_pretrain=p.need_pretrain)
    for warning in corpus.warnings:
        print(f"warning: {warning}")
        print(f"corpus warning: {warning}", file=sys.__stderr__)  # shown by Snakemake, not only in the log
    print(corpus.raw)
    print(corpus.provenance)
    save_corpus(corpus, snakemake.output.raw)  # noqa: F821
