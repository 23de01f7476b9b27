"""Fault injection over every function of checkpoints/recovery/scaling/nan/scenarios that writes a
file or restores state (issue 13, "a second look").

Each fault runs against a folder that already holds a good checkpoint (or a model, optimizer and
scaler in a known state) and then checks three things:

- survived: the call either succeeds or raises a clear error of a documented type (OSError,
  ValueError, TypeError, KeyboardInterrupt where the fault is one), never something else;
- nothing lost: every checkpoint that was good before still loads with the same weights, no other
  file is touched, no temporary file is left, no file of another run is changed;
- nothing mixed: a restore that fails leaves the model, optimizer and scaler exactly as they were.

``FAULTS`` lists them; ``test_fault`` runs each one; ``test_totals`` counts them (the numbers in
the issue note come from ``pytest tests/test_checkpoint_faults.py -q``).
"""

import errno
import hashlib
import io
import os
import pathlib
import pickle

import pytest
import torch

import course_utils.atomic as atomic
from course_utils.nan.checkpoints import (
    Checkpointer,
    CheckpointStore,
    apply_training_state,
    load_checkpoint,
    save_checkpoint,
)
from course_utils.scaling import DynamicLossScaler

FAULTS = {}


def fault(function):
    FAULTS[function.__name__] = function
    return function


def small_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def trained(seed: int = 0):
    model = small_model(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.ones(3, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


def snapshot(*objects) -> bytes:
    """Every state of the objects, as bytes (to compare before and after)."""
    buffer = io.BytesIO()
    torch.save([o.state_dict() for o in objects], buffer)
    return hashlib.sha256(buffer.getvalue()).digest()


class Folder:
    """A store with one good checkpoint (step 1) and a file of someone else beside it."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.outside = root / "outside.txt"
        self.outside.write_text("not a checkpoint; must never change")
        self.store = CheckpointStore(root / "ck", keep_last=2, on_message=lambda m: None)
        self.model, self.optimizer = trained(1)
        self.store.save(1, self.model, self.optimizer)
        self.good = {1: load_checkpoint(self.store.path(1))}

    def lost(self) -> list[str]:
        problems = []
        if self.outside.read_text() != "not a checkpoint; must never change":
            problems.append("outside file changed")
        for step, state in self.good.items():
            try:
                now = load_checkpoint(self.store.path(step))
            except Exception as exc:  # noqa: BLE001 - any failure here is data lost
                problems.append(f"step {step} lost: {exc}")
                continue
            if any(not torch.equal(a, b) for a, b in zip(now["model"].values(),
                                                          state["model"].values(), strict=True)):  # fmt: skip
                problems.append(f"step {step} changed")
        leftovers = [p.name for p in self.store.directory.iterdir() if p.name.endswith(".tmp")]
        if leftovers:
            problems.append(f"temporary files left: {leftovers}")
        return problems


def expect(error, call):
    """Run ``call``; it may succeed, or raise ``error`` (a clear, documented type)."""
    try:
        call()
    except error:
        return
    # any other exception propagates: the fault is not survived


# ----------------------------------------------------------------------------- writing


@fault
def replace_fails_disk_full(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    monkeypatch.setattr(os, "replace", _raise(OSError(errno.ENOSPC, "No space left on device")))
    expect(OSError, lambda: f.store.save(2, small_model(2)))
    monkeypatch.undo()
    return f.lost() + ([] if f.store.steps() == [1] else ["a half save got a name"])


@fault
def replace_fails_when_overwriting_the_same_step(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    monkeypatch.setattr(os, "replace", _raise(OSError(errno.EIO, "I/O error")))
    expect(OSError, lambda: f.store.save(1, small_model(2)))
    monkeypatch.undo()
    return f.lost()


@fault
def fsync_fails(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    monkeypatch.setattr(os, "fsync", _raise(OSError(errno.EIO, "I/O error")))
    expect(OSError, lambda: f.store.save(2, small_model(2)))
    monkeypatch.undo()
    return f.lost()


@fault
def ctrl_c_during_fsync(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    monkeypatch.setattr(os, "fsync", _raise(KeyboardInterrupt()))
    expect(KeyboardInterrupt, lambda: f.store.save(1, small_model(2)))
    monkeypatch.undo()
    return f.lost()


@fault
def disk_full_half_way_through_the_write(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    real_write = os.write

    def half_then_full(fd, data):
        if len(data) > 64:
            real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    expect(OSError, lambda: f.store.save(2, small_model(2)))
    monkeypatch.undo()
    return f.lost() + ([] if f.store.steps() == [1] else ["a half save got a name"])


@fault
def torch_save_fails_mid_write(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    real_save = torch.save

    def broken(obj, buffer, *args, **kwargs):
        buffer.write(b"PK\x03\x04 half a zip")
        raise RuntimeError("serialization failed")

    monkeypatch.setattr(torch, "save", broken)
    expect(RuntimeError, lambda: f.store.save(2, small_model(2)))
    monkeypatch.setattr(torch, "save", real_save)
    return f.lost() + ([] if f.store.steps() == [1] else ["a failed save got a name"])


@fault
def temp_file_cannot_be_created(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    monkeypatch.setattr(atomic.tempfile, "mkstemp", _raise(PermissionError(errno.EACCES, "no")))
    expect(OSError, lambda: f.store.save(2, small_model(2)))
    monkeypatch.undo()
    return f.lost()


@fault
def fchmod_fails(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    monkeypatch.setattr(os, "fchmod", _raise(OSError(errno.EPERM, "not permitted")))
    expect(OSError, lambda: f.store.save(2, small_model(2)))
    monkeypatch.undo()
    return f.lost()


@fault
def folder_fsync_fails_after_the_rename(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    real_open = os.open

    def no_folder_open(path, flags, *args, **kwargs):
        if os.path.isdir(path):
            raise OSError(errno.EACCES, "cannot open a folder")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_folder_open)
    f.store.save(2, small_model(2))  # best effort: the save itself succeeds
    monkeypatch.undo()
    f.good[2] = load_checkpoint(f.store.path(2))
    return f.lost()


@fault
def pruning_cannot_delete_an_old_checkpoint(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    f.store.save(2, small_model(2))
    monkeypatch.setattr(pathlib.Path, "unlink", _raise(PermissionError(errno.EACCES, "no")))
    f.store.save(3, small_model(3))  # the save succeeded: a failed prune must not undo that
    monkeypatch.undo()
    f.good[3] = load_checkpoint(f.store.path(3))
    return f.lost()


@fault
def symlink_planted_at_an_old_style_temp_name(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (f.store.directory / f".step_000002.ckpt.tmp-{os.getpid()}").symlink_to(victim)
    f.store.save(2, small_model(2))
    f.good[2] = load_checkpoint(f.store.path(2))
    return f.lost() + ([] if victim.read_text() == "precious" else ["written through a symlink"])


@fault
def symlink_planted_at_a_new_style_temp_name(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    for i in range(20):  # mkstemp picks random names: plant many
        (f.store.directory / f".step_000002.ckpt.{i:08d}.tmp").symlink_to(victim)
    f.store.save(2, small_model(2))
    f.good[2] = load_checkpoint(f.store.path(2))
    problems = f.lost()
    problems = [p for p in problems if not p.startswith("temporary files left")]  # ours: links
    return problems + ([] if victim.read_text() == "precious" else ["written through a symlink"])


@fault
def symlink_at_the_final_name_to_a_file_outside(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    (f.store.directory / "step_000002.ckpt").symlink_to(f.outside)
    f.store.save(2, small_model(2))  # replaces the link, never writes through it
    f.good[2] = load_checkpoint(f.store.path(2))
    return f.lost()


@fault
def another_runs_checkpoint_at_the_same_step(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    theirs = CheckpointStore(f.store.directory, keep_last=None, resume=True)
    theirs.run_id = "their-run"
    theirs.save(5, small_model(5))
    their_bytes = theirs.path(5).read_bytes()
    expect(FileExistsError, lambda: f.store.save(5, small_model(2)))
    expect(FileExistsError, lambda: f.store.load(5))
    f.store.discard(5)
    for step in (6, 7, 8):
        f.store.save(step, small_model(step))
    intact = theirs.path(5).exists() and theirs.path(5).read_bytes() == their_bytes
    return [p for p in f.lost() if "step 1" not in p] + ([] if intact else ["their file changed"])


@fault
def a_second_store_on_a_used_folder(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    before = sorted(p.name for p in f.store.directory.iterdir())
    expect(FileExistsError, lambda: CheckpointStore(f.store.directory))
    after = sorted(p.name for p in f.store.directory.iterdir())
    return f.lost() + ([] if before == after else ["the refusal touched the folder"])


@fault
def folder_path_is_a_file(tmp_path, monkeypatch):
    (tmp_path / "ck").write_text("a file where the folder should be")
    expect(OSError, lambda: CheckpointStore(tmp_path / "ck"))
    return [] if (tmp_path / "ck").read_text().startswith("a file") else ["file overwritten"]


@fault
def pruning_never_deletes_a_file_it_cannot_attribute(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    stranger = f.store.directory / "step_000000.ckpt"
    stranger.write_bytes(b"someone's file, not a course checkpoint")
    for step in (2, 3, 4):
        f.store.save(step, small_model(step))
    kept = stranger.exists() and stranger.read_bytes().startswith(b"someone's")
    return [p for p in f.lost() if "step 1" not in p] + ([] if kept else ["stranger deleted"])


@fault
def non_finite_weights(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    bad = small_model(2)
    with torch.no_grad():
        bad[2].bias.fill_(float("inf"))
    expect(ValueError, lambda: f.store.save(2, bad))
    for step in (3, 4, 5):  # a plain script saving NaN weights: the good one is kept
        f.store.save(step, bad, allow_nonfinite=True)
    return f.lost() + ([] if f.store.latest_good()["step"] == 1 else ["good one not found"])


@fault
def extra_that_would_not_load(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    expect(TypeError, lambda: f.store.save(2, small_model(2), extra={"p": pathlib.Path(".")}))
    expect(TypeError, lambda: save_checkpoint(f.store.path(1), {"x": pathlib.Path(".")}))
    return f.lost() + ([] if f.store.steps() == [1] else ["an unloadable file was saved"])


@fault
def checkpointer_save_fails(tmp_path, monkeypatch):
    from course_utils.train import TrainState

    f = Folder(tmp_path)
    monkeypatch.setattr(os, "replace", _raise(OSError(errno.ENOSPC, "full")))
    state = TrainState(small_model(2), None, None, None, step=2)
    expect(OSError, lambda: Checkpointer(f.store, every=1).on_step_end(state))
    monkeypatch.undo()
    return f.lost()


# ----------------------------------------------------------------------------- reading, restoring


def _damage(f: "Folder", change) -> None:
    model, optimizer = trained(2)
    f.store.save(2, model, optimizer)
    path = f.store.path(2)
    data = path.read_bytes()
    path.write_bytes(change(data))


def _restore_gives_step_1(f: "Folder") -> list[str]:
    model, optimizer = trained(7)
    step = f.store.restore(model, optimizer)
    same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  f.good[1]["model"].values(), strict=True))  # fmt: skip
    return [] if step == 1 and same else [f"restored step {step}, same weights: {same}"]


@fault
def truncated_newest(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    _damage(f, lambda d: d[: len(d) // 3])
    return f.lost() + _restore_gives_step_1(f)


@fault
def one_bit_flipped_in_the_newest(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    _damage(f, lambda d: d[:-20] + bytes([d[-20] ^ 1]) + d[-19:])
    return f.lost() + _restore_gives_step_1(f)


@fault
def newest_emptied(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    _damage(f, lambda d: b"")
    return f.lost() + _restore_gives_step_1(f)


@fault
def newest_header_garbled(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    _damage(f, lambda d: b"course-checkpoint v2 sha256=zz bytes=-1 run=? finite=2\n" + d)
    return f.lost() + _restore_gives_step_1(f)


@fault
def newest_is_a_pickle_bomb_with_a_valid_digest(tmp_path, monkeypatch):
    f = Folder(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    body = pickle.dumps({"model": Evil()})
    header = (
        f"course-checkpoint v2 sha256={hashlib.sha256(body).hexdigest()} bytes={len(body)} "
        f"run={f.store.run_id} finite=1\n"
    ).encode()
    f.store.path(2).write_bytes(header + body)
    problems = f.lost() + _restore_gives_step_1(f)
    return problems + (["code ran"] if (tmp_path / "pwned").exists() else [])


@fault
def newest_is_a_folder(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    (f.store.directory / "step_000002.ckpt").mkdir()
    return f.lost() + _restore_gives_step_1(f)


@fault
def newest_unreadable(tmp_path, monkeypatch):
    f = Folder(tmp_path)
    model, optimizer = trained(2)
    f.store.save(2, model, optimizer)
    real = pathlib.Path.read_bytes

    def deny(self):
        if self.name == "step_000002.ckpt":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", deny)
    problems = _restore_gives_step_1(f)
    monkeypatch.undo()
    f.good[2] = load_checkpoint(f.store.path(2))
    return f.lost() + problems


@fault
def legacy_v1_file_still_loads(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    torch.save({"step": 3, "w": torch.ones(2)}, buffer)
    body = buffer.getvalue()
    path = tmp_path / "old.ckpt"
    header = f"course-checkpoint v1 sha256={hashlib.sha256(body).hexdigest()} bytes={len(body)}\n"
    path.write_bytes(header.encode() + body)
    return [] if load_checkpoint(path)["step"] == 3 else ["v1 file no longer loads"]


def _mismatch(tmp_path, make_target, state_change=None):
    """apply_training_state with a state that does not fit: it must raise ValueError and leave
    the model, optimizer and scaler exactly as they were."""
    f = Folder(tmp_path)
    state = load_checkpoint(f.store.path(1))
    scaler_state = DynamicLossScaler(init_scale=8.0).state_dict()
    state["scaler"] = scaler_state
    if state_change is not None:
        state_change(state)
    model, optimizer = make_target()
    scaler = DynamicLossScaler(init_scale=1024.0)
    before = snapshot(model, optimizer, scaler)
    rng = torch.get_rng_state()
    expect(ValueError, lambda: apply_training_state(state, model, optimizer, scaler))
    changed = snapshot(model, optimizer, scaler) != before or not torch.equal(
        rng, torch.get_rng_state()
    )
    return f.lost() + (["a failed restore changed the objects (mixed state)"] if changed else [])


@fault
def restore_into_another_architecture(tmp_path, monkeypatch):
    def wider():
        torch.manual_seed(3)
        model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
        return model, torch.optim.AdamW(model.parameters())

    return _mismatch(tmp_path, wider)


@fault
def restore_with_another_parameter_list_in_the_optimizer(tmp_path, monkeypatch):
    def fewer():
        model, _ = trained(3)
        return model, torch.optim.AdamW(list(model.parameters())[:2])

    return _mismatch(tmp_path, fewer)


@fault
def restore_with_a_nan_loss_scale(tmp_path, monkeypatch):
    return _mismatch(tmp_path, lambda: trained(3),
                     lambda s: s["scaler"].update(scale=float("nan")))  # fmt: skip


@fault
def restore_with_a_zero_growth_interval(tmp_path, monkeypatch):
    return _mismatch(tmp_path, lambda: trained(3),
                     lambda s: s["scaler"].update(growth_interval=0))  # fmt: skip


@fault
def restore_with_a_bad_rng_state(tmp_path, monkeypatch):
    return _mismatch(tmp_path, lambda: trained(3),
                     lambda s: s.update(rng_cpu=torch.zeros(3)))  # fmt: skip


@fault
def restore_with_a_missing_weight(tmp_path, monkeypatch):
    return _mismatch(tmp_path, lambda: trained(3), lambda s: s["model"].pop("2.bias"))


# ----------------------------------------------------------------------------- the guards


@fault
def guard_save_fails_then_a_nan(tmp_path, monkeypatch):
    from course_utils.nan.recovery import NanGuard
    from course_utils.train import Callback, train

    real_replace = os.replace

    class CrashOnce(Callback):
        def on_step_end(self, state):
            if state.step == 4:

                def crash(*args, **kwargs):
                    monkeypatch.setattr(os, "replace", real_replace)
                    raise OSError(errno.ENOSPC, "No space left on device")

                monkeypatch.setattr(os, "replace", crash)

    class NanAt(Callback):
        def on_before_optimizer_step(self, state):
            if state.step == 6:
                state.loss = float("nan")

    guard = NanGuard(tmp_path / "ck", save_every=2, printer=lambda m: None)
    model = _Regression()
    train(model, _batch(), steps=8, precision="fp32", progress=False,
          callbacks=[CrashOnce(), NanAt(), guard])  # fmt: skip
    actions = [(e.step, e.action) for e in guard.events]
    ok = actions == [(4, "checkpoint not saved"), (6, "rolled back")]
    ok = ok and "restored step 2" in guard.events[1].reason
    return [] if ok else [f"events: {actions}"]


@fault
def guard_run_twice_in_one_folder(tmp_path, monkeypatch):
    from course_utils.nan.recovery import NanGuard
    from course_utils.train import train

    first = NanGuard(tmp_path / "ck", save_every=2, printer=lambda m: None)
    train(_Regression(), _batch(), steps=4, precision="fp32", progress=False, callbacks=[first])
    files = {p.name: p.read_bytes() for p in (tmp_path / "ck").iterdir()}
    expect(FileExistsError, lambda: NanGuard(tmp_path / "ck", printer=lambda m: None))
    now = {p.name: p.read_bytes() for p in (tmp_path / "ck").iterdir()}
    return [] if files == now else ["the second guard changed the first run's files"]


@fault
def guard_update_makes_weights_nan(tmp_path, monkeypatch):
    from course_utils.nan.recovery import NanGuard
    from course_utils.train import Callback, train

    class PoisonAfterUpdate(Callback):
        def on_step_end(self, state):
            if state.step == 3:
                with torch.no_grad():
                    state.model.net[0].weight[0, 0] = float("nan")

    guard = NanGuard(tmp_path / "ck", save_every=2, printer=lambda m: None)
    model = _Regression()
    train(model, _batch(), steps=8, precision="fp32", progress=False,
          callbacks=[PoisonAfterUpdate(), guard])  # fmt: skip
    problems = []
    for step in guard.store.steps():
        weights = load_checkpoint(guard.store.path(step))["model"]
        if not all(bool(torch.isfinite(t).all()) for t in weights.values()):
            problems.append(f"step {step} saved with NaN")
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        problems.append("the run ended with NaN weights")
    return problems


@fault
def scaler_state_with_missing_keys(tmp_path, monkeypatch):
    scaler = DynamicLossScaler(init_scale=64.0)
    before = scaler.state_dict()
    expect(ValueError, lambda: scaler.load_state_dict({}))
    expect(TypeError, lambda: scaler.load_state_dict({**before, "growth_interval": "7"}))
    return [] if scaler.state_dict() == before else ["scaler changed by a failed load"]


@fault
def scenario_resumed_from_another_architecture(tmp_path, monkeypatch):
    from course_utils.nan.scenarios import BadBatchScenario

    state = {"step": 2, "model": small_model().state_dict()}
    expect((RuntimeError, ValueError), lambda: BadBatchScenario(steps=4, bad_step=None)
           .train(start=state, precision="fp32"))  # fmt: skip
    return []


@fault
def find_first_nonfinite_forward_raises(tmp_path, monkeypatch):
    from course_utils.nan import find_first_nonfinite

    model = _Regression()
    model(**_batch()).backward()
    grads = [p.grad.clone() for p in model.parameters()]

    def boom(module, args):
        raise RuntimeError("forward failed")

    handle = model.net[2].register_forward_pre_hook(boom)
    expect(RuntimeError, lambda: find_first_nonfinite(model, _batch()))
    handle.remove()
    hooks = sum(len(m._forward_hooks) for m in model.modules())
    same = all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads, strict=True))
    return ([] if same else ["gradients not put back"]) + ([f"{hooks} hooks left"] if hooks else [])


class _Regression(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = small_model()

    def forward(self, x, y):
        return ((self.net(x) - y) ** 2).mean()


def _batch():
    generator = torch.Generator().manual_seed(0)
    return {
        "x": torch.randn(8, 4, generator=generator),
        "y": torch.randn(8, 2, generator=generator),
    }


def _raise(error):
    def raiser(*args, **kwargs):
        raise error

    return raiser


# ----------------------------------------------------------------------------- running them


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault(name, tmp_path, monkeypatch):
    lost = FAULTS[name](tmp_path, monkeypatch)
    assert lost == [], f"{name}: {lost}"


def test_totals(tmp_path_factory, capsys):
    """Runs every fault again and prints the totals (tried, survived, data lost)."""
    survived = lost = 0
    for name, function in FAULTS.items():
        monkeypatch = pytest.MonkeyPatch()
        try:
            problems = function(tmp_path_factory.mktemp(name), monkeypatch)
        except BaseException as exc:  # noqa: BLE001 - counted as not survived
            problems = None
            print(f"{name}: not survived: {type(exc).__name__}: {exc}")
        finally:
            monkeypatch.undo()
        if problems is not None:
            survived += 1
            lost += bool(problems)
    with capsys.disabled():
        print(f"\nfaults tried: {len(FAULTS)}, survived: {survived}, data lost: {lost}")
    assert survived == len(FAULTS) and lost == 0
