"""course_utils.nan.checkpoints: atomic saves, checksums, corrupt and poisoned checkpoints skipped."""

import multiprocessing
import os
import signal
import time

import pytest
import torch

from course_utils.nan.checkpoints import (
    Checkpointer,
    CheckpointStore,
    CorruptCheckpointError,
    apply_training_state,
    load_checkpoint,
    nonfinite_tensors,
    save_checkpoint,
)


def small_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def trained_optimizer(model):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.ones(3, 4)).sum().backward()
    optimizer.step()
    return optimizer


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


# ----------------------------------------------------------------------------- one file


def test_round_trip(tmp_path):
    payload = {"step": 3, "w": torch.arange(5.0), "nested": {"lr": 0.1, "names": ["a", "b"]}}
    path = save_checkpoint(tmp_path / "x.ckpt", payload)
    loaded = load_checkpoint(path)
    assert loaded["step"] == 3 and loaded["nested"] == {"lr": 0.1, "names": ["a", "b"]}
    assert torch.equal(loaded["w"], torch.arange(5.0))
    assert [p.name for p in tmp_path.iterdir()] == ["x.ckpt"]  # no temporary file left


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "truncated"),
        (lambda data: data[:-1], "truncated"),
        (lambda data: data[:-10] + bytes(b ^ 0xFF for b in data[-10:]), "corrupted"),
        (lambda data: b"PK" + data[30:], "not a course checkpoint"),
        (lambda data: b"", "not a course checkpoint"),
    ],
    ids=["half", "last-byte", "flipped", "no-header", "empty"],
)
def test_damaged_file_is_detected(tmp_path, damage, message):
    path = save_checkpoint(tmp_path / "x.ckpt", {"w": torch.randn(64)})
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptCheckpointError, match=message) as info:
        load_checkpoint(path)
    assert "x.ckpt" in str(info.value)  # the message names the file


def test_valid_digest_but_unloadable_payload(tmp_path):
    import hashlib

    body = b"not a torch file"
    header = f"course-checkpoint v1 sha256={hashlib.sha256(body).hexdigest()} bytes={len(body)}\n"
    path = tmp_path / "x.ckpt"
    path.write_bytes(header.encode() + body)
    with pytest.raises(CorruptCheckpointError, match="torch.load failed"):
        load_checkpoint(path)


def test_payload_must_be_a_dict(tmp_path):
    with pytest.raises(TypeError, match="dict"):
        save_checkpoint(tmp_path / "x.ckpt", [1, 2])


def test_interrupted_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "x.ckpt", {"version": 1})

    def crash(*args, **kwargs):
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        save_checkpoint(path, {"version": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["x.ckpt"]  # the temporary file is gone


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "x.ckpt", {"version": 1})

    def crash(fd):
        raise KeyboardInterrupt  # Ctrl-C between write and rename

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"version": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["version"] == 1


def _save_then_hang(directory, ready):
    """Child process: save step 2 of a store, but stop for good in the middle of the write."""
    import course_utils.nan.checkpoints as checkpoints

    def hang(fd):
        ready.set()
        time.sleep(60)

    checkpoints.os.fsync = hang
    store = checkpoints.CheckpointStore(directory, keep_last=2, resume=True)  # the same run
    store.save(2, small_model(1))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_process_killed_mid_save(tmp_path):
    store = CheckpointStore(tmp_path, keep_last=2)
    model = small_model(0)
    store.save(1, model)
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    child = context.Process(target=_save_then_hang, args=(tmp_path, ready))
    child.start()
    assert ready.wait(30), "the child never reached the write"
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    assert store.steps() == [1]  # the half-written step 2 has no final name
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers, "the test should leave the dead writer's temporary file"
    restored = small_model(5)
    assert store.restore(restored) == 1 and same_weights(restored, model)
    store.save(3, model)  # a temp file this fresh may belong to a live writer: kept
    assert all(p.exists() for p in leftovers)
    for p in leftovers:  # an hour later nobody is writing it any more
        os.utime(p, (time.time() - 3700, time.time() - 3700))
    store.save(4, model)  # the next save cleans up after the dead process
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- training state


def test_apply_training_state_restores_model_optimizer_scaler(tmp_path):
    from course_utils.scaling import DynamicLossScaler

    model = small_model(0)
    optimizer = trained_optimizer(model)
    scaler = DynamicLossScaler(init_scale=1024.0)
    scaler.update(found_inf=True)
    store = CheckpointStore(tmp_path)
    store.save(7, model, optimizer, scaler)

    other = small_model(1)
    other_opt = torch.optim.AdamW(other.parameters(), lr=5.0)
    other_scaler = DynamicLossScaler()
    assert store.restore(other, other_opt, other_scaler) == 7
    assert same_weights(other, model)
    assert other_scaler.scale == 512.0
    assert other_opt.param_groups[0]["lr"] == 1e-2
    exp_avg = optimizer.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(other_opt.state_dict()["state"][0]["exp_avg"], exp_avg)


def test_loaded_state_is_not_aliased(tmp_path):
    """Training after a restore must not change the state that was restored (reused later)."""
    model = small_model(0)
    store = CheckpointStore(tmp_path)
    store.save(1, model, trained_optimizer(model))
    state = store.load(1)
    before = state["optimizer"]["state"][0]["exp_avg"].clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    apply_training_state(state, model, optimizer)
    model(torch.ones(3, 4)).sum().backward()
    optimizer.step()
    assert torch.equal(state["optimizer"]["state"][0]["exp_avg"], before)


def test_mismatched_model_gives_a_clear_error(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(1, small_model())
    with pytest.raises(ValueError, match="does not fit"):
        store.restore(torch.nn.Linear(3, 3))


# ----------------------------------------------------------------------------- a folder of them


def test_keep_last_prunes_old_checkpoints(tmp_path):
    store = CheckpointStore(tmp_path, keep_last=2)
    for step in (10, 20, 30):
        store.save(step, small_model())
    assert store.steps() == [20, 30]


def test_corrupt_newest_is_skipped_with_a_message(tmp_path):
    messages = []
    store = CheckpointStore(tmp_path, keep_last=None, on_message=messages.append)
    models = {step: small_model(step) for step in (1, 2)}
    for step, model in models.items():
        store.save(step, model)
    path = store.path(2)
    path.write_bytes(path.read_bytes()[:100])  # a copy that did not finish
    restored = small_model(9)
    assert store.restore(restored) == 1
    assert same_weights(restored, models[1])
    assert len(messages) == 1 and "step_000002.ckpt" in messages[0] and "truncated" in messages[0]


def test_checkpoint_with_nan_weights_is_skipped(tmp_path):
    messages = []
    store = CheckpointStore(tmp_path, on_message=messages.append)
    store.save(1, small_model(1))
    poisoned = small_model(2)
    with torch.no_grad():
        poisoned[0].weight[0, 0] = float("nan")
    store.save(2, poisoned, allow_nonfinite=True)
    assert store.latest_good()["step"] == 1
    assert "NaN/inf" in messages[0] and "0.weight" in messages[0]
    assert store.latest_good(require_finite=False)["step"] == 2


def test_no_good_checkpoint(tmp_path):
    store = CheckpointStore(tmp_path, on_message=lambda message: None)
    assert store.latest_good() is None
    with pytest.raises(FileNotFoundError, match="no loadable checkpoint"):
        store.restore(small_model())
    store.save(1, small_model())
    store.path(1).write_bytes(b"garbage")
    assert store.latest_good() is None


def test_before_and_discard(tmp_path):
    store = CheckpointStore(tmp_path, keep_last=None)
    for step in (5, 10, 15):
        store.save(step, small_model())
    assert store.latest_good(before=15)["step"] == 10
    store.discard(10)
    store.discard(99)  # absent: no error
    assert store.steps() == [5, 15]


def test_store_arguments():
    with pytest.raises(ValueError, match="keep_last"):
        CheckpointStore("/tmp/unused-course-store", keep_last=0)


def test_nonfinite_tensors():
    tensors = {"a": torch.ones(2), "b": torch.tensor([1.0, float("inf")]), "i": torch.arange(3)}
    assert nonfinite_tensors(tensors) == ["b"]


def test_checkpointer_callback(tmp_path):
    from course_utils.train import train

    store = CheckpointStore(tmp_path, keep_last=None)
    model = small_model()

    class Regression(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x, y):
            return ((self.net(x) - y) ** 2).mean()

    batch = {"x": torch.randn(8, 4), "y": torch.randn(8, 2)}
    train(Regression(), batch, steps=6, precision="fp32", callbacks=[Checkpointer(store, every=3)],
          progress=False)  # fmt: skip
    assert store.steps() == [3, 6]
    with pytest.raises(ValueError, match="every"):
        Checkpointer(store, every=0)
