"""Rule finetune: train one variant ({variant} = full | qlora) with the transformers Trainer."""
from pathlib import Path

from datasets import load_from_disk
from transformers import AutoTokenizer, DataCollatorForLanguageModeling, Trainer

from qrepro import finetune, resources, training
from qrepro.metrics_io import write_metrics
from qrepro.modeling import count_parameters
from qrepro.runlog import log_to
from qrepro.tokenizer import finish

p = snakemake.params  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
variant = snakemake.wildcards.variant  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    training.set_threads(snakemake.threads)  # noqa: F821
    training.seed_everything(p.seed)
    cuda, precision = training.device_and_precision(p.shared["precision"])
    tokenizer = finish(AutoTokenizer.from_pretrained(inp.tokenizer))
    data = load_from_disk(inp.tokenized)
    eval_data = data["validation"]
    if p.shared["eval_max_samples"]:
        eval_data = eval_data.select(range(min(p.shared["eval_max_samples"], eval_data.num_rows)))

    training.claim_checkpoint_dir(p.checkpoint_dir, training.fingerprint(
        {"variant": variant, "hp": p.hp, "shared": p.shared, "seed": p.seed, "precision": precision},
        [inp.base_model, inp.tokenized]))
    estimate = resources.estimate_for_job(inp.base_model, variant, p.hp, p.max_length)
    resources.guard(estimate, *resources.available_bytes(cuda), what=f"fine-tuning {variant}")
    print(f"memory estimate: {estimate}")
    model = finetune.build(variant, inp.base_model, p.hp, precision, cuda)
    args = training.training_arguments(p.checkpoint_dir, p.hp, p.shared, precision, cuda, p.seed)
    timer = training.StepTimer()
    trainer = Trainer(model=model, args=args, train_dataset=data["train"], eval_dataset=eval_data,
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False), callbacks=[timer])
    memory = training.PeakMemory(cuda)
    train_time, resumed_from, steps_run = training.train(trainer, memory)
    print(f"trained {variant} in {train_time:.1f}s (resumed from {resumed_from})")

    finetune.save_model(trainer.model, variant, str(Path(out.weights).parent))
    history = trainer.state.log_history
    training.log_history_frame(history).to_csv(out.log_history, index=False)
    finetune.write_json(out.hyperparameters, finetune.resolved_hyperparameters(variant, args, model, precision, p.hp))

    total, trainable = count_parameters(model)
    steps = trainer.state.global_step
    pure = sum(timer.durations) / max(1, len(timer.durations))
    sources = [inp.base_model, inp.tokenized]
    write_metrics(p.metrics_dir, variant, {
        "total_params": dict(value=total, unit="parameters", inputs=[inp.base_model], method=(
            "Sum of numel over the base model's parameters (4-bit weights by their logical shape, LoRA excluded).")),
        "trainable_params": dict(value=trainable, unit="parameters", inputs=[inp.base_model], method=(
            "Sum of numel over parameters with requires_grad=True after the variant's model was built.")),
        "trainable_percent": dict(value=100.0 * trainable / total, unit="%", inputs=[inp.base_model], method=(
            "trainable_params / total_params x 100, as the paper's Table 6.")),
        "train_time_s": dict(value=train_time, unit="s", inputs=sources, timing=True, method=(
            "Wall clock around trainer.train(), evaluation passes and checkpoint saves included (paper protocol)."),
            details={"resumed_from_checkpoint": resumed_from, "steps_run_in_this_job": steps_run}),
        "time_per_step_s": dict(value=train_time / max(1, steps_run), unit="s", inputs=sources, timing=True, method=(
            "train_time_s divided by the optimizer steps it covered (paper protocol)."),
            details={"steps_run_in_this_job": steps_run}),
        "pure_step_time_s": dict(value=pure, unit="s", inputs=sources, timing=True, method=(
            "Mean time from on_step_begin to on_step_end over the optimizer steps timed in this process, "
            "excluding evaluation and checkpoint saves (TrainerCallback)."),
            details={"steps_timed": len(timer.durations)}),
        "train_steps": dict(value=steps, unit="optimizer steps", inputs=sources, method=(
            "trainer.state.global_step after training.")),
        "train_loss_first": dict(value=training.first_train_loss(history), unit="nats/token", inputs=sources,
                                 method="First logged training loss (mean over the first logging window)."),
        "train_loss_final": dict(value=training.final_train_loss(history), unit="nats/token", inputs=sources,
                                 method="Last logged training loss (mean over the last logging window)."),
        "precision": dict(value=precision, unit="dtype", inputs=[], method=(
            "Training precision that ran: bf16/fp16 mixed precision via the Trainer, or fp32; "
            "fp16 on CPU is refused because accelerate would silently run fp32.")),
        "peak_train_memory_mb": dict(value=memory.mb, unit="MB (1024^2 bytes)", inputs=sources, timing=True,
                                     method=f"Peak memory of the training job: {memory.method}.",
                                     details={"process_peak_rss_mb_including_load": training.lifetime_peak_rss_mb()}),
    })
