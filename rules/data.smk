# Data: the bundled real text carved into splits (data.source: bundled), then raw splits from the configured source → tokenizer → tokenized splits (datasets save_to_disk).
# The corpus rule checks every split before it writes anything (qrepro.data.checks); data_card records
# what was loaded, one metric file per fact.


rule carve_bundled:
    output:
        carved=directory(f"{RESULTS}/data/carved"),
    input:
        carved_file=f"{BUNDLED['dir']}/{BUNDLED['carved_file']}",
        test_file=f"{BUNDLED['dir']}/{BUNDLED['test_file']}",
        checksums=f"{BUNDLED['dir']}/SHA256SUMS",
    params:
        shares=BUNDLED["shares"],
    log:
        f"{LOGS}/carve_bundled.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/carve_bundled.py"


rule corpus:
    output:
        raw=directory(f"{RESULTS}/data/raw"),
    input:
        # data.source: bundled reads the carved folder as a local one
        carved=rules.carve_bundled.output.carved if config["data"]["source"] == "bundled" else [],
    params:
        source=config["data"]["source"],
        seed=config["seed"],
        synthetic=config["data"]["synthetic"],
        hf=config["data"]["hf"],
        local_dir=lambda wildcards, input: input.carved or config["data"]["local_dir"],
        # for the long-row warning (a character heuristic: this rule has no tokenizer)
        max_length=config["data"]["max_length"],
        packing=config["data"]["packing"],
        # the base model is pretrained on the pretrain split: local data must have one
        need_pretrain=config["model"]["source"] == "pretrain" and config["model"]["init"] == "pretrained",
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


rule data_card:
    output:
        CATALOGUE.outputs("data_card"),
    input:
        raw=rules.corpus.output.raw,
        tokenizer=rules.tokenizer.output.tokenizer,
    params:
        metrics=declared_metrics,
        bundled_licence=BUNDLED["licence"],
        tokenizer_source=rules.tokenizer.params.source,
        vocab_size=rules.tokenizer.params.vocab_size,
        model_id=rules.tokenizer.params.model_id,
        revision=rules.tokenizer.params.revision,
    log:
        f"{LOGS}/data_card.log",
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/data_card.py"
