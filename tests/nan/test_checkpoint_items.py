"""Issue 13 (items 1, 2, 3, 10 and `save(step=-5)`): a checkpoint store never restores, prunes or
overwrites what its run did not write, never saves non-finite weights unless told to, never
prunes its newest good checkpoint, refuses at save time what it could not load, and never
writes through a planted symlink."""

import datetime
import os
import pathlib

import numpy as np
import pytest
import torch

from course_utils.nan.checkpoints import (
    Checkpointer,
    CheckpointStore,
    NonFiniteWeightsError,
    load_checkpoint,
    save_checkpoint,
)
from course_utils.nan.recovery import NanGuard
from course_utils.train import Callback, train


def small_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def poisoned(seed: int = 0) -> torch.nn.Module:
    model = small_model(seed)
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    return model


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.values(), b.values(), strict=True))


# ----------------------------------------------------------------------------- item 1


def test_a_new_store_refuses_a_folder_holding_another_runs_checkpoints(tmp_path):
    first = CheckpointStore(tmp_path, keep_last=3)
    for step in (0, 10, 20):
        first.save(step, small_model(step))
    with pytest.raises(FileExistsError, match="another run") as info:
        CheckpointStore(tmp_path)
    assert "resume=True" in str(info.value) and "fresh folder" in str(info.value)
    assert first.steps() == [0, 10, 20]  # nothing touched


def test_resume_continues_the_same_run(tmp_path):
    first = CheckpointStore(tmp_path, keep_last=None)
    model = small_model(3)
    first.save(5, model)
    again = CheckpointStore(tmp_path, keep_last=None, resume=True)
    assert again.run_id == first.run_id and again.steps() == [5]
    restored = small_model(9)
    assert again.restore(restored) == 5
    assert same_weights(restored.state_dict(), model.state_dict())


def test_a_rerun_of_a_nanguard_cell_never_restores_the_old_runs_weights(tmp_path):
    batch = {"x": torch.randn(8, 4), "y": torch.randn(8, 2)}

    class Regression(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x, y):
            return ((self.net(x) - y) ** 2).mean()

    first = NanGuard(tmp_path / "ck", save_every=2, printer=lambda m: None)
    train(Regression(small_model(1)), batch, steps=8, precision="fp32", progress=False,
          callbacks=[first])  # fmt: skip
    with pytest.raises(FileExistsError, match="another run"):
        NanGuard(tmp_path / "ck", save_every=2, printer=lambda m: None)
    assert first.store.steps() == [4, 6, 8]  # the first run's checkpoints are intact


def test_another_runs_file_appearing_later_is_neither_restored_nor_overwritten(tmp_path):
    messages = []
    ours = CheckpointStore(tmp_path, keep_last=2, on_message=messages.append)
    ours.save(1, small_model(1))
    # another run writes into the same folder afterwards (e.g. a second kernel)
    theirs = CheckpointStore(tmp_path, keep_last=None, resume=True)
    theirs.run_id = "someone-else"
    theirs.save(5, small_model(5))
    with pytest.raises(FileExistsError, match="another run"):
        ours.save(5, small_model(2))
    assert load_checkpoint(ours.path(5))["step"] == 5
    assert ours.steps() == [1]
    assert ours.latest_good()["step"] == 1
    for step in (2, 3, 4):
        ours.save(step, small_model(step))
    assert ours.steps() == [3, 4] and ours.path(5).exists()  # never pruned theirs


# ----------------------------------------------------------------------------- item 2


def test_save_refuses_non_finite_weights_by_default(tmp_path):
    store = CheckpointStore(tmp_path)
    with pytest.raises(NonFiniteWeightsError, match=r"NaN/inf.*0\.weight"):
        store.save(1, poisoned())
    assert store.steps() == [] and list(tmp_path.iterdir()) == []


def test_pruning_never_deletes_the_newest_good_checkpoint(tmp_path):
    store = CheckpointStore(tmp_path, keep_last=3, on_message=lambda m: None)
    store.save(0, small_model())
    for step in (2, 4, 6, 8):
        store.save(step, poisoned(step), allow_nonfinite=True)
    assert store.steps() == [0, 4, 6, 8]
    assert store.latest_good()["step"] == 0


def test_checkpointer_saves_what_a_plain_script_saves_but_keeps_the_good_one(tmp_path):
    class Poison(Callback):
        def on_step_end(self, state):
            if state.step == 3:
                with torch.no_grad():
                    state.model.net[0].weight.fill_(float("nan"))

    class Regression(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = small_model()

        def forward(self, x, y):
            return ((self.net(x) - y) ** 2).mean()

    store = CheckpointStore(tmp_path, keep_last=2, on_message=lambda m: None)
    batch = {"x": torch.randn(8, 4), "y": torch.randn(8, 2)}
    train(Regression(), batch, steps=8, precision="fp32", progress=False,
          callbacks=[Poison(), Checkpointer(store, every=1)])  # fmt: skip
    assert store.steps() == [2, 7, 8] and store.latest_good()["step"] == 2


def test_guard_never_saves_weights_its_update_made_non_finite(tmp_path):
    """AdamW with eps=0 and a zero gradient writes 0/0 = NaN into a weight while the loss and the
    gradient norm stay finite; the damage shows in the loss only later (step 9)."""

    class Hidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = small_model()
            self.unused = torch.nn.Parameter(torch.zeros(3))

        def forward(self, x, y, use_unused):
            loss = ((self.net(x) - y) ** 2).mean()
            mask = torch.full((3,), bool(use_unused))
            return loss + torch.where(mask, self.unused, torch.zeros(3)).sum()

    batches = [
        {"x": torch.randn(8, 4), "y": torch.randn(8, 2), "use_unused": step == 9}
        for step in range(1, 13)
    ]
    printed = []
    guard = NanGuard(tmp_path / "ck", save_every=2, printer=printed.append)
    model = Hidden()
    train(model, batches, steps=12, precision="fp32", progress=False, callbacks=[guard],
          make_optimizer=lambda params: torch.optim.AdamW(params, lr=1e-2, eps=0.0))  # fmt: skip
    for step in guard.store.steps():  # nothing non-finite on disk
        weights = load_checkpoint(guard.store.path(step))["model"]
        assert all(bool(torch.isfinite(t).all()) for t in weights.values())
    assert 0 in guard.store.steps()  # the only good checkpoint survived
    text = "\n".join(printed)
    assert text.count("checkpoint skipped: checkpoint skipped") == 0
    assert "the run" not in text
    assert "NaN/inf" in text and "step 2" in text


def test_store_messages_name_the_file_once(tmp_path):
    messages = []
    store = CheckpointStore(tmp_path, keep_last=None, on_message=messages.append)
    store.save(1, small_model())
    store.save(2, poisoned(), allow_nonfinite=True)
    store.latest_good()
    assert messages and messages[0].count("checkpoint skipped") == 1
    assert "the run" not in messages[0] and "step_000002.ckpt" in messages[0]


# ----------------------------------------------------------------------------- item 3


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (np.float64(1.5), None),  # a float subclass: fine, comes back as a float
        (np.int64(3), "int64"),
        (np.ones(2), "ndarray"),
        (pathlib.Path("/tmp/x"), "Path"),
        (datetime.datetime(2026, 1, 1), "datetime"),
        ((1, 2), "tuple"),
        ({1: "a"}, "key"),
    ],
)
def test_extra_that_would_not_load_is_refused_at_save_time(tmp_path, value, kind):
    store = CheckpointStore(tmp_path)
    if kind is None:
        store.save(1, small_model(), extra={"v": value})
        assert store.latest_good()["extra"] == {"v": 1.5}
        return
    with pytest.raises(TypeError, match=kind) as info:
        store.save(1, small_model(), extra={"v": value})
    assert "extra['v']" in str(info.value)
    assert store.steps() == [] and list(tmp_path.iterdir()) == []


def test_save_checkpoint_refuses_a_payload_that_weights_only_cannot_load(tmp_path):
    with pytest.raises(TypeError, match="weights_only"):
        save_checkpoint(tmp_path / "a.ckpt", {"when": datetime.date(2026, 1, 1)})
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- item 10


def test_a_planted_symlink_at_the_old_temp_name_is_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    store = CheckpointStore(tmp_path / "ck")
    (store.directory / f".step_000001.ckpt.tmp-{os.getpid()}").symlink_to(victim)
    store.save(1, small_model())
    assert victim.read_text() == "precious"
    assert store.latest_good()["step"] == 1


def test_stale_temp_files_are_cleaned_but_fresh_ones_and_symlink_targets_are_kept(tmp_path):
    store = CheckpointStore(tmp_path / "ck")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    stale = store.directory / ".step_000001.ckpt.abcd1234.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (1, 1))
    fresh = store.directory / ".step_000002.ckpt.efgh5678.tmp"
    fresh.write_bytes(b"being written")
    link = store.directory / ".step_000003.ckpt.ijkl9012.tmp"
    link.symlink_to(victim)
    os.utime(link, (1, 1), follow_symlinks=False)
    store.save(4, small_model())
    assert not stale.exists() and fresh.exists()
    assert not link.is_symlink() and victim.read_text() == "precious"


# ----------------------------------------------------------------------------- step -5


@pytest.mark.parametrize("step", [-5, True, 1.5, "3"])
def test_a_step_that_steps_would_not_list_is_refused(tmp_path, step):
    store = CheckpointStore(tmp_path)
    with pytest.raises((ValueError, TypeError), match="step"):
        store.save(step, small_model())
    assert list(tmp_path.iterdir()) == []


def test_new_run_folder_gives_each_rerun_its_own_folder(tmp_path):
    from course_utils.nan.checkpoints import new_run_folder

    first = new_run_folder(tmp_path, "guarded")
    second = new_run_folder(tmp_path, "guarded")
    assert first == tmp_path / "guarded" and second == tmp_path / "guarded-2"
    assert first.is_dir() and second.is_dir()
    CheckpointStore(first)  # a fresh folder: no other run's checkpoints to refuse
    for bad in ("", "a/b", "..", None):
        with pytest.raises(ValueError, match="plain folder name"):
            new_run_folder(tmp_path, bad)
