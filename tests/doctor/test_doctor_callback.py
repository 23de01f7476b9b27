"""DoctorCallback in a real (tiny) Trainer run: the doctor's report at on_train_begin and the
precision audit's verdict after the first step."""

import pytest
import torch
from tiny_models import tiny_gpt2
from transformers import Trainer, TrainingArguments

from course_utils.doctor import DoctorCallback


def _train(tmp_path, callback, **flags):
    ids = torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(0))
    data = [{"input_ids": row, "labels": row} for row in ids]
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, use_cpu=True,
        report_to="none", save_strategy="no", disable_tqdm=True, logging_strategy="no", **flags,
    )  # fmt: skip
    Trainer(model=tiny_gpt2(), args=args, train_dataset=data, callbacks=[callback]).train()
    return callback


def test_fp16_on_cpu_is_named_before_step_one_and_the_audit_confirms_fp32(
    tmp_path, capsys, one_thread
):
    callback = _train(tmp_path, DoctorCallback(), fp16=True)
    assert callback.report.codes == ["fp16-on-cpu"]
    assert callback.report.findings[0].where == "args"
    assert callback.audit_report.steps == 1 and callback.audit_report.ran == "fp32"
    out = capsys.readouterr().out
    assert "[error] fp16-on-cpu (args)" in out
    assert "precision audit, after step 1: MISMATCH: ran fp32" in out


def test_a_clean_run_says_so(tmp_path, capsys, one_thread):
    callback = _train(tmp_path, DoctorCallback(hardware="cpu", audit=False))
    assert callback.report.findings == [] and callback.audit_report is None
    assert "No precision problems found." in capsys.readouterr().out


def test_strict_stops_training_on_an_error(tmp_path, one_thread):
    with pytest.raises(RuntimeError, match="precision doctor found errors: fp16-on-cpu"):
        _train(tmp_path, DoctorCallback(strict=True, verbose=False, hardware="cpu"), fp16=True)


def test_bad_flags():
    with pytest.raises(TypeError, match="strict must be True or False"):
        DoctorCallback(strict="yes")
    with pytest.raises(ValueError, match="unknown GPU name"):
        DoctorCallback(hardware="Tesla T9000")
