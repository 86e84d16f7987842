# Data: raw splits from the configured source → tokenizer → tokenized splits (datasets save_to_disk).


rule corpus:
    output:
        raw=directory(f"{RESULTS}/data/raw"),
    input:
        lib("data", "corpus", "hub"),
    params:
        source=config["data"]["source"],
        seed=config["seed"],
        synthetic=config["data"]["synthetic"],
        hf=config["data"]["hf"],
        local_dir=config["data"]["local_dir"],
    log:
        f"{LOGS}/corpus.log",
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/prepare_corpus.py"


rule tokenizer:
    output:
        tokenizer=directory(f"{RESULTS}/tokenizer"),
    input:
        lib("tokenizer", "hub"),
        raw=rules.corpus.output.raw,
    params:
        source=config["tokenizer"]["source"],
        vocab_size=config["tokenizer"]["vocab_size"],
        model_id=config["model"]["hub_id"] if config["model"]["source"] == "hub" else config["model"]["local_path"],
        revision=config["model"]["revision"] if config["model"]["source"] == "hub" else None,
    log:
        f"{LOGS}/tokenizer.log",
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/build_tokenizer.py"


rule tokenize:
    output:
        tokenized=directory(f"{RESULTS}/data/tokenized"),
        stats=f"{RESULTS}/data/split_stats.json",
    input:
        lib("data", "tokenizer"),
        raw=rules.corpus.output.raw,
        tokenizer=rules.tokenizer.output.tokenizer,
    params:
        max_length=config["data"]["max_length"],
        packing=config["data"]["packing"],
    log:
        f"{LOGS}/tokenize.log",
    resources:
        mem_mb=4000,
    conda:
        CONDA_ENV
    script:
        "../scripts/tokenize_splits.py"


rule tokenize_pretrain:
    output:
        tokenized=directory(f"{RESULTS}/data/pretrain_tokenized"),
    input:
        lib("data", "tokenizer"),
        raw=rules.corpus.output.raw,
        tokenizer=rules.tokenizer.output.tokenizer,
    params:
        max_length=config["data"]["max_length"],
    log:
        f"{LOGS}/tokenize_pretrain.log",
    resources:
        mem_mb=4000,
    conda:
        CONDA_ENV
    script:
        "../scripts/tokenize_pretrain.py"
