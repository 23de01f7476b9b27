"""The doctor's catalogue: every finding code with its severity, what it catches, the usual fix,
and a link to where people hit it (an issue thread or the documentation that states the rule).

Severities: ``error`` = breaks, or silently trains something other than what was asked for;
``warning`` = risky or slow; ``info`` = speed left on the table.

Taught in notebook 09.
"""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Code:
    """One entry of the catalogue."""

    code: str
    severity: str  # "error", "warning" or "info"
    title: str  # what it catches, in one line
    fix: str  # the usual fix
    link: str  # where people hit it / the rule is documented


_ENTRIES = (
    Code(
        "fp16-on-bf16-checkpoint",
        "warning",
        "fp16 training of a model whose checkpoint (or config) dtype is bf16: activations that were "
        "fine in bf16 can outgrow fp16's maximum 65504 and turn into inf/NaN (T5, Gemma)",
        "train in bf16 (bf16=True / autocast(dtype=torch.bfloat16)) on a GPU that has it; on an fp16-only "
        "GPU (T4, V100) train in fp32 or watch the activations (notebook 06)",
        "https://github.com/huggingface/transformers/issues/5651",
    ),
    Code(
        "fp16-trainable-weights",
        "error",
        "trainable parameters in fp16 with fp16 AMP or a GradScaler: GradScaler refuses to unscale fp16 "
        'gradients ("Attempting to unscale FP16 gradients")',
        "keep the trainable weights in fp32 (from_pretrained(..., dtype=torch.float32), no model.half()) "
        "and let autocast make the fp16 copies; with LoRA only the adapters need to be fp32",
        "https://github.com/huggingface/transformers/issues/23165",
    ),
    Code(
        "scaler-with-bf16",
        "warning",
        "a GradScaler with bf16 autocast or bf16 parameters: bf16 has fp32's range and needs no loss "
        "scaling. Over fp32 weights (bf16 autocast) the gradients are fp32 and the scaler is "
        "needless but harmless; with bf16 parameters the gradients are bf16, and on CUDA unscaling "
        "them is reported to fail with NotImplementedError (not run by the course)",
        "drop the scaler for bf16, or build it as torch.amp.GradScaler(device, "
        "enabled=(dtype == torch.float16))",
        "https://github.com/pytorch/pytorch/issues/127176",
    ),
    Code(
        "bf16-emulated",
        "warning",
        "bf16 requested on a GPU without native bf16 (compute capability below 8.0, e.g. T4, V100): "
        "accepted, but it runs on CUDA's bf16 emulation, without bf16 tensor cores (at a speed the "
        "course has not measured)",
        "on that GPU use fp16 autocast with a GradScaler (fp16=True), or fp32",
        "https://github.com/pytorch/pytorch/issues/124996",
    ),
    Code(
        "pure-bf16",
        "warning",
        "bf16 weights trained as they are (bf16 AMP on bf16 parameters): no fp32 master weights, so "
        "updates smaller than half a bf16 spacing are lost (transformers 5's from_pretrained defaults "
        'to dtype="auto", so a bf16 checkpoint arrives in bf16)',
        "load the model with from_pretrained(..., dtype=torch.float32) and let bf16=True / autocast "
        "make the bf16 copies (or train LoRA adapters, which PEFT keeps in fp32)",
        "https://github.com/huggingface/transformers/blob/v5.24.0/src/transformers/modeling_utils.py#L4033",
    ),
    Code(
        "clip-before-unscale",
        "error",
        "gradient clipping on scaled gradients: clip_grad_norm_ after scaler.scale(loss).backward() "
        "with no scaler.unscale_(optimizer) before it compares a norm S times too large with max_norm",
        "call scaler.unscale_(optimizer) once, after the last backward and before clip_grad_norm_",
        "https://docs.pytorch.org/docs/stable/notes/amp_examples.html#gradient-clipping",
    ),
    Code(
        "deprecated-cuda-amp",
        "warning",
        "torch.cuda.amp.autocast / torch.cuda.amp.GradScaler (and torch.cpu.amp): deprecated, they "
        "emit a FutureWarning",
        'use torch.autocast("cuda", dtype=...) and torch.amp.GradScaler("cuda")',
        "https://docs.pytorch.org/docs/stable/amp.html",
    ),
    Code(
        "backward-in-autocast",
        "warning",
        ".backward() inside an autocast block: PyTorch recommends against backward passes under "
        "autocast (backward ops already run in the dtype autocast chose for the forward)",
        "end the `with torch.autocast(...)` block after the loss, then call backward outside it",
        "https://docs.pytorch.org/docs/stable/amp.html#torch.autocast",
    ),
    Code(
        "fp16-on-cpu",
        "error",
        "fp16=True without a CUDA device: the Trainer (through accelerate) turns fp16 mixed precision "
        "off and trains in fp32, without a word",
        "on a CPU use bf16=True with use_cpu=True, or fp32; fp16=True only on a GPU",
        "https://github.com/huggingface/accelerate/blob/v1.15.0/src/accelerate/accelerator.py#L565",
    ),
    Code(
        "bf16-needs-use-cpu",
        "error",
        "bf16=True (or TRL's default bf16) in TrainingArguments / a TRL config on a machine without "
        "a GPU, without use_cpu=True: transformers refuses to build it (ValueError: Your setup "
        "doesn't support bf16/gpu. You need to assign use_cpu if you want to train the model on "
        "CPU.)",
        "on a machine without a GPU pass use_cpu=True with bf16=True (CPU autocast in bf16), or "
        "bf16=False for fp32",
        "https://github.com/huggingface/transformers/blob/v5.24.0/src/transformers/training_args.py#L1777-L1782",
    ),
    Code(
        "fp16-and-bf16",
        "error",
        "both fp16=True and bf16=True: TrainingArguments refuses it (ValueError: At most one of fp16 "
        "and bf16 can be True)",
        "pick one: bf16 on GPUs with compute capability 8.0+ and on CPUs (with use_cpu=True), fp16 "
        "on older GPUs",
        "https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments",
    ),
    Code(
        "bf16-gradient-reduce",
        "warning",
        "FSDP MixedPrecisionPolicy(param_dtype=bf16) with reduce_dtype None or bf16: gradients are "
        "summed across ranks in bf16 (accelerate's FSDP default with bf16 does exactly this)",
        "MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)",
        "https://docs.pytorch.org/docs/stable/distributed.fsdp.fully_shard.html",
    ),
    Code(
        "qlora-fp32-compute",
        "warning",
        "BitsAndBytesConfig(load_in_4bit=True) without bnb_4bit_compute_dtype on a model loaded in "
        "fp16 or fp32: bitsandbytes' Linear4bit computes in its input's dtype when that is fp32 or "
        "bf16, and in bnb_4bit_compute_dtype (default fp32) when it is fp16 (with a warning that "
        "this 'will lead to slow inference or training speed'); so the 4-bit layers compute in "
        "fp32. A model loaded in bf16 computes in bf16 without it",
        "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16) "
        "(torch.float16 on GPUs without bf16)",
        "https://github.com/bitsandbytes-foundation/bitsandbytes/blob/main/bitsandbytes/nn/modules.py",
    ),
    Code(
        "scaler-not-checkpointed",
        "warning",
        "a script that saves model and optimizer state while using a GradScaler, but not "
        "scaler.state_dict(): a resumed run restarts the loss scale at the default 65536 and may "
        "skip steps until it is back down",
        'save scaler.state_dict() with the checkpoint (checkpoint["scaler"] = scaler.state_dict()) '
        "and scaler.load_state_dict(...) on resume",
        "https://github.com/pytorch/vision/pull/4923",
    ),
    Code(
        "tf32-off",
        "info",
        "fp32 training on an NVIDIA GPU of compute capability 8.0+ (Ampere or newer) with TF32 "
        "matmuls off: speed left on the table",
        'torch.set_float32_matmul_precision("high") (or tf32=True in TrainingArguments), or train '
        "in bf16",
        "https://docs.pytorch.org/docs/stable/notes/cuda.html#tensorfloat-32-tf32-on-ampere-and-later-devices",
    ),
)

CODES: dict[str, Code] = {entry.code: entry for entry in _ENTRIES}
