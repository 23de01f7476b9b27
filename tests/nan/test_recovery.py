"""course_utils.nan.recovery under fault injection: NaN/inf in the loss, a gradient, an activation, an
embedding row; corrupt checkpoints; a failed save. The run must finish, the last good checkpoint
must survive, and the events must say what happened."""

import math
import os

import pytest
import torch
from tiny_models import tiny_gpt2 as _tiny_gpt2
from transformers.utils import logging as hf_logging

from course_utils.nan import nonfinite_parameters
from course_utils.nan.recovery import NanGuard, NanRecoveryCallback, RecoveryEvent
from course_utils.train import Callback, train

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_gpt2(seed: int = 0):
    return _tiny_gpt2(seed, vocab_size=64, n_positions=16)


hf_logging.set_verbosity_error()
NAN, INF = float("nan"), float("inf")
STEPS = 16


def batches(count: int = STEPS) -> list[dict]:
    generator = torch.Generator().manual_seed(1)
    out = []
    for _ in range(count):
        ids = torch.randint(1, 64, (2, 8), generator=generator)
        ids[:, 0] = 7  # token 7 is in every batch (for the embedding-row fault)
        out.append({"input_ids": ids, "labels": ids.clone()})
    return out


class Fault(Callback):
    """Arms a fault at the end of step ``at - 1`` so that it fires during step ``at`` (and the
    ``repeat - 1`` steps after it)."""

    def __init__(self, model, at: int, kind: str, value: float = NAN, repeat: int = 1):
        self.model, self.at, self.kind, self.value, self.repeat = model, at, kind, value, repeat
        self.armed = 0
        base_loss = model.loss_function
        model.loss_function = lambda *a, **k: self._poison_loss(base_loss(*a, **k))
        model.transformer.h[1].mlp.c_fc.register_forward_hook(self._poison_activation)
        model.transformer.h[0].attn.c_attn.weight.register_hook(self._poison_grad)

    def on_step_end(self, state):
        if state.step == self.at - 1:
            self.armed = self.repeat
            if self.kind == "embedding":
                with torch.no_grad():
                    self.model.transformer.wte.weight[7] = self.value
                self.armed = 0

    def _fire(self, kind):
        if self.armed and self.kind == kind:
            self.armed -= 1
            return True
        return False

    def _poison_loss(self, loss):
        return loss * self.value if self._fire("loss") else loss

    def _poison_activation(self, module, args, output):
        return output * self.value if self._fire("activation") else None

    def _poison_grad(self, grad):
        return grad * self.value if self._fire("gradient") else None


def run(tmp_path, kind, *, at=9, value=NAN, policy="rollback", extra_callbacks=(), **guard_args):
    model = tiny_gpt2()
    fault = Fault(model, at, kind, value)
    printed = []
    guard = NanGuard(tmp_path / "ckpt", policy=policy, save_every=4, printer=printed.append,
                     **guard_args)  # fmt: skip
    history = train(model, batches(), steps=STEPS, precision="fp32", lr=1e-3, progress=False,
                    callbacks=[guard, fault, *extra_callbacks])  # fmt: skip
    return model, guard, history, printed


def assert_healed(model, guard, history, printed, step):
    assert len(history) == STEPS  # the run finished
    assert not nonfinite_parameters(model)  # the weights are fine
    assert math.isfinite(history[-1].loss)
    assert guard.events and guard.events[0].step == step  # the log says when...
    assert printed and f"step {step}" in printed[0]  # ... and it was printed
    state = guard.store.latest_good()  # the last good checkpoint survives and loads
    assert state is not None and state["step"] == STEPS


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("loss", NAN, "loss is nan"),
        ("loss", INF, "loss is inf"),
        ("gradient", NAN, "gradient norm is nan"),
        ("gradient", INF, "gradient norm is inf"),
        ("activation", INF, "loss is nan"),
        ("embedding", NAN, "loss is nan"),
    ],
)
def test_rollback_heals_every_fault(tmp_path, kind, value, reason):
    model, guard, history, printed = run(tmp_path, kind, value=value)
    assert_healed(model, guard, history, printed, step=9)
    event = guard.events[0]
    assert event.action == "rolled back" and reason in event.reason
    assert "restored step 8" in event.reason
    assert history[8].skipped and guard.rollbacks == 1


def test_skip_policy_skips_a_transient_fault(tmp_path):
    model, guard, history, printed = run(tmp_path, "gradient", policy="skip")
    assert_healed(model, guard, history, printed, step=9)
    assert guard.events[0].action == "skipped" and history.skipped_steps == [9]


def test_skip_policy_stops_when_the_weights_are_damaged(tmp_path):
    model, guard, history, _ = run(tmp_path, "embedding", policy="skip", max_consecutive_bad=2)
    assert len(history) == 11  # bad at 9, 10, 11: stopped with a message, not a crash
    assert [e.action for e in guard.events] == ["skipped", "skipped", "stopped"]
    assert "policy='rollback'" in guard.events[-1].reason


def test_skip_policy_needs_no_checkpoints(tmp_path):
    model = tiny_gpt2()
    guard = NanGuard(policy="skip", printer=lambda message: None)
    fault = Fault(model, 5, "loss")
    history = train(model, batches(8), steps=8, precision="fp32", progress=False,
                    callbacks=[guard, fault])  # fmt: skip
    assert history.skipped_steps == [5] and guard.store is None


def test_corrupt_newest_checkpoint_is_skipped_during_rollback(tmp_path):
    class Corrupt(Callback):
        def on_step_end(self, state):
            if state.step == 8:  # the guard has just saved step 8: damage it on disk
                path = guard.store.path(8)
                path.write_bytes(path.read_bytes()[:-50])

    model = tiny_gpt2()
    guard = NanGuard(tmp_path / "ckpt", save_every=4, printer=lambda message: None)
    history = train(model, batches(), steps=STEPS, precision="fp32", progress=False,
                    callbacks=[guard, Corrupt(), Fault(model, 10, "gradient")])  # fmt: skip
    assert len(history) == STEPS and not nonfinite_parameters(model)
    actions = [(e.step, e.action) for e in guard.events]
    assert actions == [(10, "checkpoint skipped"), (10, "rolled back")]
    assert "step_000008.ckpt" in guard.events[0].reason and "truncated" in guard.events[0].reason
    assert "restored step 4" in guard.events[1].reason


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    real_replace = os.replace

    class CrashOnce(Callback):
        def on_step_end(self, state):  # runs before the guard's save of step 8
            if state.step == 8:

                def crash(*args, **kwargs):
                    monkeypatch.setattr(os, "replace", real_replace)
                    raise OSError("simulated crash in the middle of the save")

                monkeypatch.setattr(os, "replace", crash)

    model = tiny_gpt2()
    guard = NanGuard(tmp_path / "ckpt", save_every=4, printer=lambda message: None)
    history = train(model, batches(), steps=STEPS, precision="fp32", progress=False,
                    callbacks=[CrashOnce(), guard, Fault(model, 10, "loss")])  # fmt: skip
    assert len(history) == STEPS and not nonfinite_parameters(model)
    assert [(e.step, e.action) for e in guard.events] == [
        (8, "checkpoint not saved"),
        (10, "rolled back"),
    ]
    assert "restored step 4" in guard.events[1].reason
    assert not [p for p in (tmp_path / "ckpt").iterdir() if ".tmp-" in p.name]


def test_checkpoint_that_fails_again_is_set_aside(tmp_path):
    """Steps 9 and 10 both fail: the step-8 checkpoint led straight back to a NaN, so the guard
    sets it aside (kept on disk, not used again) and goes back to step 4."""
    model = tiny_gpt2()
    guard = NanGuard(tmp_path / "ckpt", save_every=4, printer=lambda message: None)
    history = train(model, batches(), steps=STEPS, precision="fp32", progress=False,
                    callbacks=[guard, Fault(model, 9, "loss", repeat=2)])  # fmt: skip
    assert len(history) == STEPS and not nonfinite_parameters(model)
    actions = [(e.step, e.action) for e in guard.events]
    assert actions == [(9, "rolled back"), (10, "checkpoint set aside"), (10, "rolled back")]
    assert "restored step 8" in guard.events[0].reason
    assert "restored step 4" in guard.events[2].reason
    assert 8 in guard.store.steps() or guard.store.steps()[0] > 8  # kept until pruned


def test_lr_factor_lowers_the_learning_rate_at_each_rollback(tmp_path):
    model, guard, history, _ = run(tmp_path, "loss", lr_factor=0.5)
    assert history[7].lr == pytest.approx(1e-3) and history[-1].lr == pytest.approx(5e-4)
    assert "learning rate x0.5" in guard.events[0].reason


def test_spike_factor_skips_a_huge_finite_gradient(tmp_path):
    model, guard, history, _ = run(tmp_path, "gradient", value=1e6, spike_factor=20)
    assert guard.events[0].action == "skipped" and guard.events[0].reason.startswith("spike")
    assert history.skipped_steps == [9] and not nonfinite_parameters(model)


def test_no_good_checkpoint_left_stops_with_a_message(tmp_path):
    class Wipe(Callback):
        def on_step_end(self, state):
            if state.step == 5:
                for step in guard.store.steps():
                    guard.store.discard(step)

    model = tiny_gpt2()
    guard = NanGuard(tmp_path / "ckpt", save_every=100, printer=lambda message: None)
    history = train(model, batches(), steps=STEPS, precision="fp32", progress=False,
                    callbacks=[guard, Wipe(), Fault(model, 7, "embedding")])  # fmt: skip
    assert len(history) == 7  # stopped at the bad step, with a message, not a crash
    assert guard.events[-1].action == "stopped"
    assert "no good checkpoint" in guard.events[-1].reason


def test_max_rollbacks_stops_the_run(tmp_path):
    model, guard, history, _ = run(tmp_path, "loss", max_rollbacks=1, at=5)
    assert len(history) == STEPS  # one rollback was enough
    model = tiny_gpt2()
    guard = NanGuard(tmp_path / "again", save_every=4, max_rollbacks=1, printer=lambda m: None)
    history = train(model, batches(), steps=STEPS, precision="fp32", progress=False,
                    callbacks=[guard, Fault(model, 9, "loss", repeat=3)])  # fmt: skip
    assert len(history) == 10 and guard.events[-1].action == "stopped"
    assert "already rolled back 1 times" in guard.events[-1].reason


def test_loss_scaler_overflows_are_left_to_the_scaler(tmp_path):
    model = tiny_gpt2()
    guard = NanGuard(tmp_path / "ckpt", save_every=4, printer=lambda message: None)
    history = train(model, batches(8), steps=8, precision="fp16-emulated", progress=False,
                    callbacks=[guard, Fault(model, 5, "gradient", INF)])  # fmt: skip
    assert history.skipped_steps == [5]  # GradScaler skipped it and backed off
    assert guard.events == []


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="policy"):
        NanGuard(tmp_path, policy="pray")
    with pytest.raises(ValueError, match="checkpoint_dir"):
        NanGuard(policy="rollback")
    with pytest.raises(ValueError, match="lr_factor"):
        NanGuard(tmp_path, lr_factor=2.0)
    with pytest.raises(ValueError, match="spike_factor"):
        NanGuard(tmp_path, spike_factor=0.5)
    with pytest.raises(ValueError, match="save_every"):
        NanGuard(tmp_path, save_every=0)


def test_summary_and_event_text(tmp_path):
    assert NanGuard(tmp_path, printer=print).summary().startswith("no recovery events")
    assert str(RecoveryEvent(3, "skipped", "loss is nan")) == "step 3: skipped: loss is nan"


# ----------------------------------------------------------------------------- HF Trainer


class _Batches(torch.utils.data.IterableDataset):
    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


def make_trainer(tmp_path, model, callbacks, steps=8, **arguments):
    from transformers import PrinterCallback, Trainer, TrainingArguments

    settings = dict(output_dir=str(tmp_path / "out"), max_steps=steps, per_device_train_batch_size=1,
                    learning_rate=1e-3, save_strategy="no", logging_strategy="no", report_to=[],
                    disable_tqdm=True, use_cpu=True) | arguments  # fmt: skip
    trainer = Trainer(model=model, args=TrainingArguments(**settings),
                      train_dataset=_Batches(batches(steps)), data_collator=lambda items: items[0],
                      callbacks=callbacks)  # fmt: skip
    trainer.remove_callback(PrinterCallback)
    return trainer


def test_trainer_callback_rolls_back_a_nan_gradient(tmp_path):
    from transformers import TrainerCallback

    model = tiny_gpt2()
    armed = []
    model.transformer.h[0].attn.c_attn.weight.register_hook(
        lambda grad: grad * NAN if armed and armed.pop() else None
    )

    class Arm(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 4:
                armed.append(True)  # fires during step 5

    callback = NanRecoveryCallback(tmp_path / "ckpt", save_every=2, lr_factor=0.5,
                                   printer=lambda message: None)  # fmt: skip
    trainer = make_trainer(tmp_path, model, [Arm(), callback], steps=6)
    trainer.train()
    assert trainer.state.global_step == 6  # finished
    assert not nonfinite_parameters(trainer.model)
    assert [(e.step, e.action) for e in callback.events] == [(5, "rolled back")]
    assert "restored step 4" in callback.events[0].reason
    assert trainer.lr_scheduler.base_lrs == [pytest.approx(5e-4)] * len(
        trainer.lr_scheduler.base_lrs
    )
    assert callback.store.latest_good()["step"] == 6


def test_trainer_without_callback_is_poisoned(tmp_path):
    """The fault above really is fatal without the callback (so the test above can fail)."""
    from transformers import TrainerCallback

    model = tiny_gpt2()
    armed = []
    model.transformer.h[0].attn.c_attn.weight.register_hook(
        lambda grad: grad * NAN if armed and armed.pop() else None
    )

    class Arm(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 4:
                armed.append(True)

    trainer = make_trainer(tmp_path, model, [Arm()], steps=6)
    trainer.train()
    assert nonfinite_parameters(trainer.model)
