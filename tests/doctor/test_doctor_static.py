"""The doctor's static checks: one positive and one negative example per code, read from source
text (never executed), plus name tracking, notebooks and line numbers."""

import json
import textwrap

import pytest

from course_utils.doctor import CODES, diagnose


def codes_in(tmp_path, source: str, hardware="cpu", name="train.py") -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return diagnose(script=path, hardware=hardware).codes


TRAINER = """
import torch
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments
model = AutoModelForCausalLM.from_pretrained({model})
args = TrainingArguments(output_dir="out", {flags})
Trainer(model=model, args=args).train()
"""

LOOP = """
import torch
from torch import nn
model = nn.Linear(4, 1).cuda()
optimizer = torch.optim.AdamW(model.parameters())
scaler = torch.amp.GradScaler("cuda"{scaler_kw})
with torch.autocast("cuda", dtype={dtype}):
    loss = model(torch.randn(2, 4, device="cuda")).sum()
{body}
"""

QLORA = """
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig
q = BitsAndBytesConfig(load_in_4bit=True{compute})
model = AutoModelForCausalLM.from_pretrained("mistralai/Mistral-7B-v0.1", quantization_config=q,
                                             dtype={dtype})
"""

# code -> (positive source, negative source, hardware). The negative differs from the positive in
# the one thing that makes the difference (so each pair also documents the fix).
CASES = {
    "fp16-on-bf16-checkpoint": (
        TRAINER.format(model='"google/gemma-2-2b", dtype=torch.float32', flags="fp16=True"),
        TRAINER.format(model='"gpt2", dtype=torch.float32', flags="fp16=True"),
        "Tesla T4",
    ),
    "fp16-trainable-weights": (
        TRAINER.format(model='"gpt2", dtype=torch.float16', flags="fp16=True"),
        TRAINER.format(model='"gpt2", dtype=torch.float32', flags="fp16=True"),
        "Tesla T4",
    ),
    "scaler-with-bf16": (
        LOOP.format(scaler_kw="", dtype="torch.bfloat16", body="scaler.scale(loss).backward()"),
        LOOP.format(scaler_kw="", dtype="torch.float16", body="scaler.scale(loss).backward()"),
        "A100",
    ),
    "bf16-emulated": (
        TRAINER.format(model='"gpt2", dtype=torch.float32', flags="bf16=True"),
        TRAINER.format(model='"gpt2", dtype=torch.float32', flags="fp16=True"),
        "Tesla T4",
    ),
    "pure-bf16": (
        TRAINER.format(model='"gpt2", dtype=torch.bfloat16', flags="bf16=True"),
        TRAINER.format(model='"gpt2", dtype=torch.float32', flags="bf16=True"),
        "A100",
    ),
    "clip-before-unscale": (
        LOOP.format(scaler_kw="", dtype="torch.float16", body=(
            "scaler.scale(loss).backward()\n"
            "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
            "scaler.step(optimizer)"
        )),
        LOOP.format(scaler_kw="", dtype="torch.float16", body=(
            "scaler.scale(loss).backward()\n"
            "scaler.unscale_(optimizer)\n"
            "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
            "scaler.step(optimizer)"
        )),
        "Tesla T4",
    ),
    "deprecated-cuda-amp": (
        "from torch.cuda.amp import GradScaler\nscaler = GradScaler()\n",
        "import torch\nscaler = torch.amp.GradScaler('cuda')\n",
        "Tesla T4",
    ),
    "backward-in-autocast": (
        LOOP.format(scaler_kw="", dtype="torch.float16", body="").replace(
            ".sum()\n", ".sum()\n    scaler.scale(loss).backward()\n"
        ),
        LOOP.format(scaler_kw="", dtype="torch.float16", body="scaler.scale(loss).backward()"),
        "Tesla T4",
    ),
    "fp16-on-cpu": (
        TRAINER.format(model='"gpt2", dtype=torch.float32', flags="fp16=True"),
        TRAINER.format(model='"gpt2", dtype=torch.float32', flags="bf16=True, use_cpu=True"),
        "cpu",
    ),
    "fp16-and-bf16": (
        TRAINER.format(model='"gpt2"', flags="fp16=True, bf16=True"),
        TRAINER.format(model='"gpt2"', flags="fp16=True, bf16=False"),
        "Tesla T4",
    ),
    "bf16-gradient-reduce": (
        "import torch\nfrom torch.distributed.fsdp import MixedPrecisionPolicy\n"
        "policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16)\n",
        "import torch\nfrom torch.distributed.fsdp import MixedPrecisionPolicy\n"
        "policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)\n",
        "A100",
    ),
    "qlora-fp32-compute": (
        QLORA.format(compute="", dtype="torch.float16"),
        QLORA.format(compute=", bnb_4bit_compute_dtype=torch.float16", dtype="torch.float16"),
        "Tesla T4",
    ),
    "bf16-needs-use-cpu": (
        TRAINER.format(model='"gpt2", dtype=torch.float32', flags="bf16=True"),
        TRAINER.format(model='"gpt2", dtype=torch.float32', flags="bf16=True, use_cpu=True"),
        "cpu",
    ),
    "scaler-not-checkpointed": (
        LOOP.format(scaler_kw="", dtype="torch.float16", body=(
            "torch.save({'model': model.state_dict(), 'opt': optimizer.state_dict()}, 'c.pt')"
        )),
        LOOP.format(scaler_kw="", dtype="torch.float16", body=(
            "torch.save({'model': model.state_dict(), 'opt': optimizer.state_dict(),\n"
            "            'scaler': scaler.state_dict()}, 'c.pt')"
        )),
        "Tesla T4",
    ),
    "tf32-off": (
        "import torch\nmodel = torch.nn.Linear(4, 1).cuda()\n"
        "model(torch.randn(2, 4, device='cuda')).sum().backward()\n",
        "import torch\ntorch.set_float32_matmul_precision('high')\n"
        "model = torch.nn.Linear(4, 1).cuda()\n"
        "model(torch.randn(2, 4, device='cuda')).sum().backward()\n",
        "A100",
    ),
}  # fmt: skip


def test_every_code_has_a_case():
    assert set(CASES) == set(CODES)


@pytest.mark.parametrize("code", sorted(CASES))
def test_positive(tmp_path, code):
    positive, _, hardware = CASES[code]
    assert code in codes_in(tmp_path, positive, hardware)


@pytest.mark.parametrize("code", sorted(CASES))
def test_negative(tmp_path, code):
    _, negative, hardware = CASES[code]
    assert code not in codes_in(tmp_path, negative, hardware)


# ------------------------------------------------------------------ conditions of single codes
def test_fp16_on_cpu_depends_on_the_hardware_and_says_which(tmp_path):
    src = TRAINER.format(model='"gpt2"', flags="fp16=True")
    (tmp_path / "t.py").write_text(src)
    [finding] = [
        f for f in diagnose(script=tmp_path / "t.py", hardware="cpu") if f.code == "fp16-on-cpu"
    ]
    assert "no GPU" in finding.message and finding.line == 5  # the TrainingArguments line
    assert "fp16-on-cpu" not in codes_in(tmp_path, src, hardware="Tesla T4")
    # use_cpu=True is a CPU run whatever the machine has
    cpu_run = TRAINER.format(model='"gpt2"', flags="fp16=True, use_cpu=True")
    assert "fp16-on-cpu" in codes_in(tmp_path, cpu_run, hardware="H100")


def test_tf32_off_is_info_and_only_for_fp32_on_ampere_or_newer(tmp_path):
    positive, _, _ = CASES["tf32-off"]
    report = diagnose(script=_write(tmp_path, positive), hardware="A100")
    assert [(f.code, f.severity) for f in report] == [("tf32-off", "info")] and report.ok
    assert "tf32-off" not in codes_in(tmp_path, positive, hardware="Tesla T4")  # no TF32 there
    assert "tf32-off" not in codes_in(tmp_path, positive, hardware="cpu")
    bf16 = TRAINER.format(model='"gpt2", dtype=torch.float32', flags="bf16=True")
    assert "tf32-off" not in codes_in(tmp_path, bf16, hardware="A100")
    tf32 = TRAINER.format(model='"gpt2", dtype=torch.float32', flags="tf32=True")
    assert "tf32-off" not in codes_in(tmp_path, tf32, hardware="A100")


def test_trl_configs_default_to_bf16(tmp_path):
    src = """
    import torch
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer
    model = AutoModelForCausalLM.from_pretrained("gpt2", dtype=torch.bfloat16)
    SFTTrainer(model=model, args=SFTConfig(output_dir="out")).train()
    """
    assert codes_in(tmp_path, src, "A100") == ["pure-bf16"]
    assert "bf16-emulated" in codes_in(tmp_path, src, "Tesla T4")
    assert codes_in(tmp_path, src.replace('output_dir="out"', "bf16=False"), "A100") == []


def test_a_family_pretrained_in_bf16_is_not_a_checkpoint_saved_in_bf16(tmp_path):
    # google/gemma-2-2b's config.json says torch_dtype float32: dtype="auto" loads it in fp32, so
    # its name alone never makes pure-bf16 (a checkpoint found on disk does: test_doctor_checkpoints)
    src = TRAINER.format(model='"google/gemma-2-2b"', flags="bf16=True")
    assert codes_in(tmp_path, src, "A100") == []
    fp16 = diagnose(script=_write(tmp_path, src.replace("bf16=True", "fp16=True")), hardware="T4")
    assert fp16.codes == ["fp16-on-bf16-checkpoint"]
    assert "(pretrained in bf16)" in fp16.findings[0].message


def test_lora_keeps_the_trainable_weights_fp32(tmp_path):
    src = """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments
    model = AutoModelForCausalLM.from_pretrained("gpt2", dtype=torch.float16)
    model = get_peft_model(model, LoraConfig())
    Trainer(model=model, args=TrainingArguments(output_dir="o", fp16=True)).train()
    """
    assert codes_in(tmp_path, src, "Tesla T4") == []


def test_a_conditional_scaler_is_never_blamed(tmp_path):
    src = LOOP.format(scaler_kw=", enabled=(dtype == torch.float16)", dtype="torch.bfloat16",
                      body="scaler.scale(loss).backward()")  # fmt: skip
    assert codes_in(tmp_path, src, "A100") == []


def test_a_disabled_scaler_makes_clipping_order_irrelevant(tmp_path):
    src = LOOP.format(scaler_kw=", enabled=False", dtype="torch.bfloat16", body=(
        "scaler.scale(loss).backward()\ntorch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)"
    ))  # fmt: skip
    assert codes_in(tmp_path, src, "A100") == []


def test_clip_order_is_checked_per_function_and_with_accumulation(tmp_path):
    src = """
    import torch
    def step(model, scaler, optimizer, batches):
        for batch in batches:
            scaler.scale(model(batch).sum()).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)

    def wrong(model, scaler, optimizer, batch):
        scaler.scale(model(batch).sum()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    """
    report = diagnose(script=_write(tmp_path, src), hardware="cpu")
    assert [(f.code, f.line) for f in report] == [("clip-before-unscale", 11)]


def test_keywords_from_names_dicts_and_attribute_assignments(tmp_path):
    via_dict = """
    from transformers import TrainingArguments
    common = {"output_dir": "out", "bf16": True}
    args = TrainingArguments(fp16=True, **common)
    """
    assert "fp16-and-bf16" in codes_in(tmp_path, via_dict, "A100")
    via_name = """
    import torch
    from torch.distributed.fsdp import MixedPrecisionPolicy
    low = torch.bfloat16
    policy = MixedPrecisionPolicy(param_dtype=low, reduce_dtype=None)
    """
    assert codes_in(tmp_path, via_name, "A100") == ["bf16-gradient-reduce"]
    via_attribute = """
    from transformers import TrainingArguments
    args = TrainingArguments(output_dir="out", fp16=True)
    args.bf16 = True
    """
    report = diagnose(script=_write(tmp_path, via_attribute), hardware="A100")
    assert [(f.code, f.line) for f in report] == [("fp16-and-bf16", 4)]


def test_values_known_only_at_run_time_raise_nothing(tmp_path):
    src = """
    import sys
    import torch
    from transformers import TrainingArguments
    fp16 = "--fp16" in sys.argv
    args = TrainingArguments(output_dir="out", fp16=fp16, bf16=not fp16)
    with torch.autocast("cuda", dtype=torch.float16 if fp16 else torch.bfloat16):
        pass
    """
    for hardware in ("cpu", "Tesla T4", "A100"):
        assert codes_in(tmp_path, src, hardware) == []


def test_accelerator_mixed_precision_is_read(tmp_path):
    src = "from accelerate import Accelerator\naccelerator = Accelerator(mixed_precision='fp16')\n"
    assert codes_in(tmp_path, src, "cpu") == ["fp16-on-cpu"]
    assert codes_in(tmp_path, src, "Tesla T4") == []


def test_fsdp_through_training_arguments_uses_accelerates_bf16_reduce(tmp_path):
    src = """
    from transformers import TrainingArguments
    args = TrainingArguments(output_dir="out", bf16=True, fsdp="full_shard")
    """
    assert codes_in(tmp_path, src, "A100") == ["bf16-gradient-reduce"]


def test_every_finding_has_a_line_and_the_catalogue_fields(tmp_path):
    positive, _, hardware = CASES["scaler-not-checkpointed"]
    for finding in diagnose(script=_write(tmp_path, positive), hardware=hardware):
        entry = CODES[finding.code]
        assert finding.line is not None and finding.where == f"line {finding.line}"
        assert (finding.severity, finding.link) == (entry.severity, entry.link)
        assert finding.fix and finding.message


# ------------------------------------------------------------------ notebooks
def _notebook(*cells: str) -> str:
    return json.dumps({
        "cells": [{"cell_type": "markdown", "source": "# title", "metadata": {}}] + [
            {"cell_type": "code", "source": c, "metadata": {}, "outputs": [], "execution_count": None}
            for c in cells
        ],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    })  # fmt: skip


def test_notebook_cells_are_one_program_with_cell_line_numbers(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(_notebook(
        "%pip install nothing\nimport torch\n!ls\nscaler = torch.amp.GradScaler('cuda')",
        "%%bash\necho not python",
        ["x = 1\n", "with torch.autocast('cuda', dtype=torch.bfloat16):\n",
         "    loss = torch.ones(1).sum()\n", "scaler.scale(loss).backward()\n"],
    ))  # fmt: skip
    [finding] = diagnose(script=path, hardware="A100").findings
    assert finding.code == "scaler-with-bf16"
    assert (finding.cell, finding.line, finding.where) == (1, 4, "cell 1, line 4")


def test_a_cell_magic_that_runs_python_is_read(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(_notebook("%%time\nfrom torch.cuda.amp import autocast"))
    [finding] = diagnose(script=path, hardware="cpu").findings
    assert (finding.code, finding.cell, finding.line) == ("deprecated-cuda-amp", 1, 2)


def _write(tmp_path, source: str):
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def test_attributes_and_autocast_contexts_kept_in_names(tmp_path):
    src = """
    import torch
    from contextlib import nullcontext

    class Loop:
        def setup(self, device_type):
            self.ctx = nullcontext() if device_type == "cpu" else torch.autocast(
                device_type, dtype=torch.bfloat16)
            self.scaler = torch.amp.GradScaler("cuda")
            self.optimizer = torch.optim.AdamW(self.model.parameters())

        def step(self, x, y):
            with self.ctx:
                logits, loss = self.model(x, y)
            self.scaler.scale(loss).backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            torch.save({"optimizer": self.optimizer.state_dict()}, "ckpt.pt")
    """
    report = diagnose(script=_write(tmp_path, src), hardware="Tesla T4")
    assert sorted((f.code, f.line) for f in report) == [
        ("bf16-emulated", 7), ("clip-before-unscale", 16), ("scaler-not-checkpointed", 17),
        ("scaler-with-bf16", 9),
    ]  # fmt: skip


def test_tf32_off_only_for_code_that_trains_when_run(tmp_path):
    library = "import torch\ndef grads(model, x):\n    model(x).sum().backward()\n"
    assert codes_in(tmp_path, library, "A100") == []  # a helper: its caller decides the precision
    script = (
        library + "if __name__ == '__main__':\n    grads(torch.nn.Linear(2, 1), torch.ones(2))\n"
    )
    assert codes_in(tmp_path, script, "A100") == ["tf32-off"]


def test_clipping_after_the_scalers_update_is_a_new_step(tmp_path):
    src = LOOP.format(scaler_kw="", dtype="torch.float16", body=(
        "scaler.scale(loss).backward()\nscaler.step(optimizer)\nscaler.update()\n"
        "other = torch.nn.Linear(2, 1)\nother(torch.ones(2)).sum().backward()\n"
        "torch.nn.utils.clip_grad_norm_(other.parameters(), 1.0)"
    ))  # fmt: skip
    assert "clip-before-unscale" not in codes_in(tmp_path, src, "Tesla T4")


def test_accelerate_clips_and_scales_by_itself(tmp_path):
    src = """
    from accelerate import Accelerator
    accelerator = Accelerator(mixed_precision="fp16")
    model, optimizer = accelerator.prepare(model, optimizer)
    for batch in loader:
        loss = model(**batch).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    """
    assert codes_in(tmp_path, src, "Tesla T4") == []


def test_tf32_off_needs_to_know_the_run_is_fp32(tmp_path):
    parsed = """
    from transformers import HfArgumentParser, Trainer, TrainingArguments
    (args,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses()
    Trainer(model=model, args=args).train()
    """
    assert codes_in(tmp_path, parsed, "A100") == []  # its flags come from the command line
    default = "from transformers import Trainer\nTrainer(model=model).train()\n"
    assert codes_in(tmp_path, default, "A100") == ["tf32-off"]  # TrainingArguments' default: fp32
    trl_default = "from trl import SFTTrainer\nSFTTrainer(model='gpt2').train()\n"
    assert codes_in(tmp_path, trl_default, "A100") == []  # TRL's default config asks for bf16


def test_an_unreadable_mapping_may_hold_any_keyword(tmp_path):
    src = """
    from trl import SFTConfig
    from transformers import BitsAndBytesConfig, TrainingArguments
    settings = load_settings()
    SFTConfig(**settings)  # bf16 may be in there: no TRL default assumed
    TrainingArguments(output_dir="o", fp16=True, bf16=True, **{**settings})
    BitsAndBytesConfig(load_in_4bit=True, **settings)
    TrainingArguments(output_dir="o", bf16=True, **settings)  # fsdp may be in there: unknown
    """
    report = diagnose(script=_write(tmp_path, src), hardware="Tesla T4")
    # only what the literal keywords say for sure: both flags given; bf16 requested on a T4
    assert sorted((f.code, f.line) for f in report) == [
        ("bf16-emulated", 6), ("bf16-emulated", 8), ("fp16-and-bf16", 6),
    ]  # fmt: skip


def test_only_the_deprecated_amp_names_are_flagged(tmp_path):
    src = """
    import torch
    from torch.cuda.amp import common, custom_fwd
    ok = torch.cuda.amp.common.amp_definitely_not_available()
    """
    report = diagnose(script=_write(tmp_path, src), hardware="cpu")
    assert [(f.code, f.line) for f in report] == [("deprecated-cuda-amp", 3)]
    assert "custom_fwd" in report.findings[0].message and "common" not in report.findings[0].message


def test_inference_in_16_bits_is_not_training(tmp_path):
    src = """
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained("google/gemma-2-2b", dtype=torch.bfloat16)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(torch.ones(1, 4, dtype=torch.long))
    """
    assert codes_in(tmp_path, src, "A100") == []
    assert codes_in(tmp_path, src + "out.logits.sum().backward()\n", "A100") == ["pure-bf16"]


def test_a_deep_copy_of_a_model_keeps_its_casts(tmp_path):
    source = """
    import copy
    import torch
    from transformers import AutoModelForCausalLM
    base = AutoModelForCausalLM.from_pretrained("gpt2", dtype=torch.float32)
    model = copy.deepcopy(base).half()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        loss = model(input_ids=torch.zeros(1, 4, dtype=torch.long)).loss
    scaler.scale(loss).backward()
    """
    assert codes_in(tmp_path, source, "Tesla T4") == ["fp16-trainable-weights"]
    assert codes_in(tmp_path, source.replace(".half()", ""), "Tesla T4") == []


def test_bf16_needs_use_cpu_only_without_a_gpu_and_for_trls_default_too(tmp_path):
    trl = """
    from trl import SFTConfig, SFTTrainer
    SFTTrainer(model="Qwen/Qwen2.5-0.5B", args=SFTConfig(output_dir="o"), train_dataset=d).train()
    """
    assert codes_in(tmp_path, trl, "cpu") == ["bf16-needs-use-cpu"]
    assert codes_in(tmp_path, trl.replace('"o"', '"o", use_cpu=True'), "cpu") == []
    assert codes_in(tmp_path, trl, "A100") == []
    fp32 = TRAINER.format(model='"gpt2", dtype=torch.float32', flags="bf16=False")
    assert codes_in(tmp_path, fp32, "cpu") == []
    at_run_time = TRAINER.format(model='"gpt2"', flags="bf16=True, use_cpu=on_cpu")
    assert codes_in(tmp_path, at_run_time, "cpu") == []  # known only when it runs: no finding


def test_scaler_with_bf16_says_whether_the_gradients_are_bf16(tmp_path):
    over_fp32 = LOOP.format(
        scaler_kw="", dtype="torch.bfloat16", body="scaler.scale(loss).backward()"
    )
    report = diagnose(script=_write(tmp_path, over_fp32), hardware="A100")
    (finding,) = report.findings
    assert "fp32 gradients" in finding.message and "harmless" in finding.message
    bf16_params = over_fp32.replace("nn.Linear(4, 1).cuda()", "nn.Linear(4, 1).cuda().bfloat16()")
    report = diagnose(script=_write(tmp_path, bf16_params), hardware="A100")
    (finding,) = [f for f in report.findings if f.code == "scaler-with-bf16"]
    assert "so bf16 gradients" in finding.message and "NotImplementedError" in finding.message


def test_qlora_compute_dtype_follows_the_other_weights(tmp_path):
    # Linear4bit takes a bf16 input's dtype: a model loaded in bf16 computes in bf16 without it
    assert codes_in(tmp_path, QLORA.format(compute="", dtype="torch.bfloat16"), "A100") == []
    assert codes_in(tmp_path, QLORA.format(compute="", dtype="torch.float32"), "A100") == [
        "qlora-fp32-compute"
    ]
    # transformers 5's dtype="auto" on a checkpoint pretrained in bf16 (Gemma): bf16 inputs
    gemma = QLORA.format(compute="", dtype='"auto"').replace("mistralai/Mistral-7B-v0.1",
                                                              "google/gemma-2-2b")  # fmt: skip
    assert codes_in(tmp_path, gemma, "A100") == []
    # a config never used to load a model: nothing to judge
    lone = (
        "from transformers import BitsAndBytesConfig\nq = BitsAndBytesConfig(load_in_4bit=True)\n"
    )
    assert codes_in(tmp_path, lone, "A100") == []
