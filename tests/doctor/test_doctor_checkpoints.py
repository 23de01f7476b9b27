"""The checkpoint's saved dtype, read from disk (never downloaded): transformers 5 loads it in that
dtype by default, so a bf16 checkpoint without dtype= trains pure bf16, and fp16 on it overflows."""

import textwrap
from types import SimpleNamespace

import pytest
import torch
from tiny_models import tiny_gpt2
from transformers import AutoModelForCausalLM

from course_utils.doctor import diagnose
from course_utils.doctor.checkpoint import saved_dtype


@pytest.fixture(scope="module")
def bf16_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run") / "bf16-ckpt"
    tiny_gpt2().to(torch.bfloat16).save_pretrained(folder)
    return folder


def _script(folder, load: str, flags: str):
    path = folder.parent / "train.py"
    path.write_text(
        textwrap.dedent(f"""
        import torch
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments
        model = AutoModelForCausalLM.from_pretrained({load})
        Trainer(model=model, args=TrainingArguments(output_dir="o", {flags})).train()
    """)
    )
    return path


def test_saved_dtype_of_folders_course_models_and_unknown_names(bf16_checkpoint):
    assert saved_dtype(str(bf16_checkpoint)) == "bf16"
    assert saved_dtype("bf16-ckpt", [bf16_checkpoint.parent]) == "bf16"  # relative to the script
    assert saved_dtype("tiny-gpt2") == "fp32"  # shipped with the course
    assert saved_dtype("no-such-org/no-such-model") is None  # not cached: unknown, no download
    assert saved_dtype("../../\x00") is None


def test_static_default_load_of_a_bf16_checkpoint_is_pure_bf16(bf16_checkpoint):
    script = _script(bf16_checkpoint, '"bf16-ckpt"', "bf16=True")
    report = diagnose(script=script, hardware="A100")
    assert report.codes == ["pure-bf16"] and "saved in bf16" in report.findings[0].message
    fixed = _script(bf16_checkpoint, '"bf16-ckpt", dtype=torch.float32', "bf16=True")
    assert diagnose(script=fixed, hardware="A100").codes == []


def test_static_fp16_on_a_saved_bf16_checkpoint(bf16_checkpoint):
    script = _script(bf16_checkpoint, '"bf16-ckpt", dtype=torch.float32', "fp16=True")
    assert diagnose(script=script, hardware="Tesla T4").codes == ["fp16-on-bf16-checkpoint"]


def test_live_sees_the_saved_dtype_even_after_an_fp32_load(bf16_checkpoint):
    model = AutoModelForCausalLM.from_pretrained(bf16_checkpoint, dtype=torch.float32)
    assert model.config.dtype == torch.float32  # the config only says how it was loaded
    args = SimpleNamespace(fp16=True, bf16=False)
    report = diagnose(model=model, args=args, hardware="Tesla T4")
    assert report.codes == ["fp16-on-bf16-checkpoint"]
    assert "saved in bf16" in report.findings[0].message
