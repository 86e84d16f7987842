"""Data stage (rules/data.smk): corpus, validation, tokenizer, tokenized splits."""
