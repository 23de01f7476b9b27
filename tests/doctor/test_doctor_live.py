"""The doctor's live checks on real objects (a model, TrainingArguments, an optimizer, a
GradScaler, an FSDP2 MixedPrecisionPolicy), the hardware argument, bad inputs and the report's
text. clip-before-unscale, backward-in-autocast and scaler-not-checkpointed are about the order
of statements in a script: they are static-only (tests in test_doctor_static.py)."""

import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.distributed.fsdp import MixedPrecisionPolicy
from transformers import BitsAndBytesConfig, TrainingArguments

from course_utils.doctor import CODES, DoctorInputError, Finding, Report, diagnose
from course_utils.hardware import CpuInfo, GpuInfo, HardwareReport


def flags(fp16=False, bf16=False, **more):
    return SimpleNamespace(fp16=fp16, bf16=bf16, **more)


def linear(dtype=torch.float32):
    return nn.Linear(4, 2).to(dtype)


class WithConfig(nn.Module):
    """A module with a Hugging Face-like ``config``."""

    def __init__(self, weights=torch.float32, **config):
        super().__init__()
        self.layer = nn.Linear(4, 2).to(weights)
        self.config = SimpleNamespace(**config)


def codes(**kwargs) -> list[str]:
    return diagnose(**kwargs).codes


# code -> (positive kwargs, negative kwargs); each pair differs in the one thing that matters.
CASES = {
    "fp16-on-bf16-checkpoint": (
        dict(model=WithConfig(torch.float32, dtype=torch.bfloat16), args=flags(fp16=True),
             hardware="Tesla T4"),
        dict(model=WithConfig(torch.float32, dtype=torch.float32), args=flags(fp16=True),
             hardware="Tesla T4"),
    ),
    "fp16-trainable-weights": (
        dict(model=linear(torch.float16), scaler=torch.amp.GradScaler("cpu"), hardware="cpu"),
        dict(model=linear(torch.float32), scaler=torch.amp.GradScaler("cpu"), hardware="cpu"),
    ),
    "scaler-with-bf16": (
        dict(model=linear(), args=flags(bf16=True), scaler=torch.amp.GradScaler("cpu"),
             hardware="A100"),
        dict(model=linear(), args=flags(bf16=True),
             scaler=torch.amp.GradScaler("cpu", enabled=False), hardware="A100"),
    ),
    "bf16-emulated": (
        dict(args=flags(bf16=True), hardware="Tesla T4"),
        dict(args=flags(bf16=True), hardware="NVIDIA A100-SXM4-80GB"),
    ),
    "pure-bf16": (
        dict(model=linear(torch.bfloat16), args=flags(bf16=True), hardware="A100"),
        dict(model=linear(torch.float32), args=flags(bf16=True), hardware="A100"),
    ),
    "deprecated-cuda-amp": (None, dict(scaler=torch.amp.GradScaler("cpu"), hardware="cpu")),
    "fp16-on-cpu": (
        dict(args=TrainingArguments(output_dir="unused", fp16=True, report_to="none"),
             hardware="cpu"),
        dict(args=TrainingArguments(output_dir="unused", fp16=True, report_to="none"),
             hardware="Tesla T4"),
    ),
    "fp16-and-bf16": (
        dict(args=flags(fp16=True, bf16=True), hardware="A100"),
        dict(args=flags(fp16=False, bf16=True), hardware="A100"),
    ),
    "bf16-gradient-reduce": (
        dict(policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16), hardware="H100"),
        dict(policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32),
             hardware="H100"),
    ),
    "qlora-fp32-compute": (
        dict(model=WithConfig(quantization_config=BitsAndBytesConfig(load_in_4bit=True)),
             hardware="A100"),
        dict(model=WithConfig(quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)), hardware="A100"),
    ),
    "bf16-needs-use-cpu": (
        dict(args=flags(bf16=True, use_cpu=False), hardware="cpu"),
        dict(args=flags(bf16=True, use_cpu=True), hardware="cpu"),
    ),
    "tf32-off": (
        dict(args=flags(), hardware="A100"),
        dict(args=flags(tf32=True), hardware="A100"),
    ),
}  # fmt: skip
STATIC_ONLY = {"clip-before-unscale", "backward-in-autocast", "scaler-not-checkpointed"}


def test_every_code_is_covered_live_or_said_static_only():
    assert set(CASES) | STATIC_ONLY == set(CODES)


@pytest.mark.parametrize("code", sorted(c for c in CASES if CASES[c][0] is not None))
def test_positive(code):
    assert code in codes(**CASES[code][0])


@pytest.mark.parametrize("code", sorted(CASES))
def test_negative(code):
    assert code not in codes(**CASES[code][1])


def test_deprecated_cuda_amp_scaler_object():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaler = torch.cuda.amp.GradScaler()  # FutureWarning (and disabled: no CUDA here)
    assert any("deprecated" in str(w.message) for w in caught)
    assert codes(scaler=scaler, hardware="cpu") == ["deprecated-cuda-amp"]


def test_optimizer_weights_count_when_no_model_is_given():
    optimizer = torch.optim.SGD(linear(torch.bfloat16).parameters(), lr=0.1)
    report = diagnose(optimizer=optimizer, args=flags(bf16=True), hardware="A100")
    assert report.codes == ["pure-bf16"] and report.findings[0].where == "optimizer"


def test_frozen_16_bit_weights_are_not_pure_bf16():
    model = linear(torch.bfloat16).requires_grad_(False)
    assert codes(model=model, args=flags(bf16=True), hardware="A100") == []


def test_a_fp16_run_on_the_bf16_checkpoint_of_a_known_family_by_name():
    model = WithConfig(torch.float32, _name_or_path="google/flan-t5-base")
    assert codes(model=model, args=flags(fp16=True), hardware="Tesla T4") == [
        "fp16-on-bf16-checkpoint"
    ]


def test_accelerates_fsdp_default_through_training_arguments():
    assert codes(args=flags(bf16=True, fsdp="full_shard"), hardware="A100") == [
        "bf16-gradient-reduce"
    ]
    policy = {"param_dtype": torch.bfloat16, "reduce_dtype": torch.float32}
    assert codes(args=flags(bf16=True, fsdp="full_shard"), policy=policy, hardware="A100") == []


def test_live_findings_have_no_line():
    [finding] = diagnose(args=flags(fp16=True, bf16=True), hardware="A100")
    assert finding.line is None and finding.cell is None and finding.where == "args"


# ------------------------------------------------------------------ hardware
def _report(gpus=()):
    cpu = CpuInfo(model="test CPU", arch="x86_64", logical_cores=2, usable_cores=2)
    return HardwareReport(cpu=cpu, gpus=tuple(gpus))


def test_hardware_report_with_a_t4():
    t4 = GpuInfo(0, "Tesla T4", "NVIDIA", (7, 5), None, 15.0, False)
    assert codes(args=flags(bf16=True), hardware=_report([t4])) == ["bf16-emulated"]
    assert codes(args=flags(fp16=True), hardware=_report()) == ["fp16-on-cpu"]


def test_hardware_name_lookup_and_what_if():
    [finding] = diagnose(args=flags(bf16=True), hardware="Tesla T4")
    assert "Tesla T4 (cc 7.5)" in finding.message
    assert codes(args=flags(bf16=True), hardware="H100") == []


def test_default_hardware_is_this_machine():
    report = diagnose(args=flags(fp16=True))
    has_gpu = torch.cuda.is_available() or torch.backends.mps.is_available()
    assert ("fp16-on-cpu" in report.codes) == (not has_gpu)


# ------------------------------------------------------------------ bad input
def test_unknown_gpu_name_says_how_to_spell_one():
    with pytest.raises(ValueError, match="unknown GPU name 'GeForce 9999 Ultra'.*Tesla T4"):
        diagnose(args=flags(), hardware="GeForce 9999 Ultra")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(model="gpt2"), "model must be a torch.nn.Module, got str"),
        (dict(args={"fp16": True}), "args must be TrainingArguments"),
        (dict(optimizer=linear()), "optimizer must be a torch.optim.Optimizer"),
        (dict(scaler=object()), "scaler must be a torch.amp.GradScaler, got object"),
        (dict(policy=torch.bfloat16), "policy must be an FSDP MixedPrecisionPolicy"),
        (dict(script=123), r"script must be a path \(str or pathlib.Path\), got int"),
        (dict(hardware=8.0), "hardware must be None .* got float"),
    ],
)
def test_wrong_types_are_a_clear_type_error(kwargs, match):
    with pytest.raises(TypeError, match=match):
        diagnose(**kwargs)


def test_positional_arguments_are_refused():
    with pytest.raises(TypeError):
        diagnose(linear())  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.py", None, "no such file"),
        ("bad.py", "def f(:\n", "cannot parse .*bad.py"),
        ("latin1.py", b"x = '\xe9'\n", "not UTF-8"),
        ("bad.ipynb", "{not json", "not a valid notebook"),
        ("cell.ipynb", '{"cells": [{"cell_type": "code", "source": "1 +"}]}', "cell 0"),
        ("deep.py", "x = " + "+".join(["1"] * 5000), "nested too deeply"),
    ],
)
def test_unreadable_scripts(tmp_path, name, content, match):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DoctorInputError, match=match):
        diagnose(script=path, hardware="cpu")


def test_a_directory_is_not_a_script(tmp_path):
    with pytest.raises(DoctorInputError, match="is a directory"):
        diagnose(script=tmp_path, hardware="cpu")


# ------------------------------------------------------------------ the report
def test_report_text_on_a_projector():
    assert str(Report([])) == "No precision problems found."
    report = diagnose(args=flags(fp16=True, bf16=True), hardware="A100")
    text = str(report)
    assert text.splitlines()[0] == "1 error"
    assert "[error] fp16-and-bf16 (args)" in text
    assert f"  fix: {CODES['fp16-and-bf16'].fix}" in text
    assert f"  see: {CODES['fp16-and-bf16'].link}" in text
    assert report.exit_code == 1 and not report.ok


def test_report_orders_errors_first_and_drops_duplicates():
    a = Finding("tf32-off", "info", "m", "f", "args", "l")
    b = Finding("fp16-on-cpu", "error", "m", "f", "args", "l")
    report = Report([a, b, a])
    assert [f.code for f in report] == ["fp16-on-cpu", "tf32-off"] and len(report) == 2
    assert report.to_dicts()[0]["line"] is None


def test_catalogue_is_complete():
    assert len(CODES) == 15
    for code, entry in CODES.items():
        assert entry.code == code and entry.severity in ("error", "warning", "info")
        assert entry.link.startswith("https://") and entry.fix and entry.title
    assert CODES["tf32-off"].severity == "info"


def test_fp16_flag_on_bf16_weights_means_a_scaler_on_bf16_gradients_on_a_gpu():
    report = diagnose(model=linear(torch.bfloat16), args=flags(fp16=True), hardware="Tesla T4")
    assert sorted(report.codes) == ["bf16-emulated", "fp16-on-bf16-checkpoint", "scaler-with-bf16"]


def test_qlora_on_a_model_with_bf16_weights_computes_in_bf16():
    config = BitsAndBytesConfig(load_in_4bit=True)
    bf16 = WithConfig(torch.bfloat16, quantization_config=config)
    assert "qlora-fp32-compute" not in codes(model=bf16, hardware="A100")
    fp16 = WithConfig(torch.float16, quantization_config=config)
    assert "qlora-fp32-compute" in codes(model=fp16, hardware="A100")


def test_scaler_with_bf16_says_whether_the_gradients_are_bf16():
    scaler = torch.amp.GradScaler("cpu")
    (fp32,) = diagnose(model=linear(), args=flags(bf16=True), scaler=scaler,
                       hardware="A100").findings  # fmt: skip
    assert "fp32 gradients" in fp32.message and "harmless" in fp32.message
    (bf16,) = [f for f in diagnose(model=linear(torch.bfloat16), scaler=scaler,
                                   hardware="A100").findings if f.code == "scaler-with-bf16"]  # fmt: skip
    assert "bf16 gradients" in bf16.message and "NotImplementedError" in bf16.message


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error needs a machine without a GPU")
def test_bf16_without_use_cpu_raises_on_a_machine_without_a_gpu(tmp_path):
    # what bf16-needs-use-cpu says (transformers 5.24, TRL 1.16): TrainingArguments(bf16=True) and
    # TRL's SFTConfig() (bf16 by default) refuse to be built; use_cpu=True is accepted
    from trl import SFTConfig

    out = str(tmp_path)
    with pytest.raises(ValueError, match="doesn't support bf16/gpu"):
        TrainingArguments(output_dir=out, bf16=True, report_to="none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # a deprecation inside TRL's own config
        with pytest.raises(ValueError, match="doesn't support bf16/gpu"):
            SFTConfig(output_dir=out, report_to="none")
    assert TrainingArguments(output_dir=out, bf16=True, use_cpu=True, report_to="none").bf16
    assert "bf16-needs-use-cpu" in CODES and CODES["bf16-needs-use-cpu"].severity == "error"
