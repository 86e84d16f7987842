"""Model stage (rules/model.smk): LLaMA configs, the base model, quantization, loading."""
