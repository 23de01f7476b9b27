"""``save_pretrained_as`` never leaves a half-written checkpoint where a good one was: the files
are written in a temporary folder beside the target and moved in only once all are written."""

from __future__ import annotations

import errno

import pytest
import torch

from course_utils import models


@pytest.fixture(scope="module")
def loaded():
    return models.load_model_and_tokenizer()


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("fail_after", ["config", "weights", "tokenizer"])
def test_a_failed_save_keeps_the_previous_checkpoint(loaded, tmp_path, monkeypatch, fail_after):
    from transformers import PreTrainedModel

    model, tokenizer = loaded
    folder = models.save_pretrained_as(model, tokenizer, tmp_path / "ckpt", "bf16")
    (folder / "notes.txt").write_text("the learner's own file")
    before = _snapshot(folder)
    real_model_save = PreTrainedModel.save_pretrained
    real_tok_save = type(tokenizer).save_pretrained

    def disk_full():
        raise OSError(errno.ENOSPC, "No space left on device")

    def model_save(self, path, **kwargs):
        if fail_after == "config":  # a partial config.json, then the disk is full
            (path / "config.json").write_text('{"architectures": [')
            disk_full()
        real_model_save(self, path, **kwargs)
        if fail_after == "weights":
            disk_full()

    def tok_save(self, path, **kwargs):
        real_tok_save(self, path, **kwargs)
        disk_full()

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", model_save)
    if fail_after == "tokenizer":
        monkeypatch.setattr(type(tokenizer), "save_pretrained", tok_save)
    with pytest.raises(OSError, match="No space left"):
        models.save_pretrained_as(model, tokenizer, folder, torch.float16)
    assert _snapshot(folder) == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary folder left


def test_a_second_save_replaces_the_checkpoint_and_keeps_other_files(loaded, tmp_path):
    model, tokenizer = loaded
    folder = models.save_pretrained_as(model, tokenizer, tmp_path / "ckpt", "bf16")
    (folder / "notes.txt").write_text("kept")
    models.save_pretrained_as(model, None, folder, "fp16")
    assert models.checkpoint_dtype(folder) is torch.float16
    assert (folder / "notes.txt").read_text() == "kept" and (folder / "tokenizer.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
