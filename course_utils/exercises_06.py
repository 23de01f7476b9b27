"""Checks for the exercises of notebook 06 (NaN recovery)."""

from __future__ import annotations

import functools
import math

from course_utils.exercises import Incorrect, exercise, expect_callable

# Scenarios the bad-batch finder is tried on: (seed, bad step); None = a run without a bad batch.
FINDER_CASES = [(3, 37), (5, 2), (7, None)]
FP16_FAILING = {"precision": "fp16"}  # the run of exercise 3, as it fails
CHECK_STEPS = 6  # steps the check runs with the learner's setting
TUNABLE = ("precision", "lr", "max_grad_norm")


@functools.lru_cache(maxsize=4)
def _batches(seed: int, bad_step: int | None) -> list[dict]:
    from course_utils.scenarios import BadBatchScenario

    return BadBatchScenario(steps=40, bad_step=bad_step, seed=seed).batches


@exercise(
    "06.find_bad_step",
    hint="The loss averages over the answer tokens: labels[:, 1:] != -100. A batch with none of "
    "them makes 0 / 0. Steps count from 1, list indices from 0.",
    title="Find the batch that will make the loss NaN, before training on it",
)
def check_find_bad_step(find_bad_step):
    """``find_bad_step(batches) -> step`` (1-based) of the first batch without answer tokens,
    or None if every batch has some."""
    expect_callable(find_bad_step, "find_bad_step")
    for seed, bad_step in FINDER_CASES:
        got = find_bad_step(_batches(seed, bad_step))
        if got != bad_step:
            where = "no bad batch" if bad_step is None else f"the bad batch at step {bad_step}"
            off_by_one = bad_step is not None and got == bad_step - 1
            raise Incorrect(
                f"for a run with {where} your function returned {got!r}"
                + (" (steps count from 1: batch i is used at step i + 1)" if off_by_one else "")
            )


@functools.lru_cache(maxsize=1)
def _fp16_report():
    from course_utils.nan import find_first_nonfinite
    from course_utils.scenarios import Fp16RangeScenario

    scenario = Fp16RangeScenario()
    return find_first_nonfinite(
        scenario.load_model(), scenario.batches[0], precision="fp16-emulated"
    )


@exercise(
    "06.overflowing_module",
    hint="Run find_first_nonfinite(model, batch, precision='fp16-emulated') and read the whole "
    "report: when a module's inputs were already non-finite, the value appeared in its parent's "
    "own code. The answer is a name from model.named_modules().",
    title="Find the module whose own computation overflows in fp16",
)
def check_overflowing_module(name):
    """``name``: the module (as in ``model.named_modules()``) where fp16 first overflows."""
    if not isinstance(name, str):
        raise Incorrect(f"answer with the module's name as a string, got {type(name).__name__}")
    report = _fp16_report()
    if report is None:  # pragma: no cover - the scenario is built to overflow
        raise Incorrect("the fp16 scenario did not overflow here: please report this")
    reported, parent = report.module, report.module.rsplit(".", 1)[0]
    if name == parent and not report.inputs_finite:
        return None
    if name == reported:
        raise Incorrect(
            f"{name!r} is the first module whose *output* is not finite, but its inputs were "
            "already NaN: the overflow happened before it, in code that is not a submodule"
        )
    if name.endswith(".attn") or name.endswith("c_attn"):
        raise Incorrect(f"{name!r} is an attention module, but not the first one that overflows")
    raise Incorrect(f"{name!r} is not where the first non-finite value appears")


@exercise(
    "06.single_fix",
    hint="Clipping and the learning rate act on gradients and updates; this run fails in the "
    "forward pass, on a value fp16 cannot hold. Which format has fp32's range?",
    title="Change one setting so that the fp16 run trains",
)
def check_single_fix(fix):
    """``fix``: a dict with ONE setting for ``Fp16RangeScenario().train(**fix)``, such that the
    run trains (every loss finite, no step skipped). The failing run is ``precision="fp16"``."""
    from course_utils.scenarios import Fp16RangeScenario

    if not isinstance(fix, dict) or len(fix) != 1:
        raise Incorrect(f"give one setting as a dict, e.g. {{'lr': 1e-4}}, got {fix!r}")
    ((key, value),) = fix.items()
    if key not in TUNABLE:
        raise Incorrect(f"{key!r} is not one of the settings to try here: {', '.join(TUNABLE)}")
    settings = FP16_FAILING | fix
    history = Fp16RangeScenario(steps=CHECK_STEPS).train(**settings)
    finite = all(math.isfinite(loss) for loss in history.losses)
    if finite and not history.skipped_steps:
        if key != "precision":  # pragma: no cover - no such fix is known for this run
            return None
        if value == "fp32":
            raise Incorrect(
                "fp32 trains, but it gives up mixed precision entirely: a 16-bit format with "
                "fp32's range exists",
                hint="bf16 has fp32's 8 exponent bits.",
            )
        return None
    if key == "precision" and value == "fp16":
        raise Incorrect("that is the failing setting itself")
    raise Incorrect(
        f"with {key}={value!r} the run still has NaN losses and skipped steps "
        f"({len(history.skipped_steps)} of {len(history)} skipped)"
    )


@exercise(
    "06.tutorial_question",
    hint="The field of TrainingArguments/SFTConfig that bounds the norm of every gradient "
    "(torch.nn.utils.clip_grad_norm_'s max_norm). Check the spelling by creating "
    "TrainingArguments(output_dir='out', **{field: value}).",
    title="The original tutorial's question: the one hyperparameter to change",
)
def check_tutorial_answer(answer):
    """``answer = (field, value)``: the ``TrainingArguments`` field and its new value."""
    if not (isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], str)):
        raise Incorrect(f"answer with a pair (field_name, value), got {answer!r}")
    field, value = answer
    if field == "gradient_max_norm":
        raise Incorrect(
            "TrainingArguments has no field 'gradient_max_norm' (the tutorial's spelling): "
            "TrainingArguments(gradient_max_norm=1.0) raises TypeError"
        )
    if field in ("bf16", "fp16", "tf32", "half_precision_backend"):
        raise Incorrect(
            "switching precision is not the fix: bf16 has fp32's range, and the run blew up "
            "because one update was far too large, not because a number overflowed bf16"
        )
    if field == "learning_rate":
        raise Incorrect(
            "a lower learning rate shrinks every update, the extreme one too, but it also slows "
            "all of training; the tutorial's single change bounds the one extreme update",
            hint="Look for the field that clips the gradient norm.",
        )
    if field != "max_grad_norm":
        raise Incorrect(f"{field!r} is not the setting that bounds an extreme gradient")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Incorrect(f"max_grad_norm takes a number, got {value!r}")
    if not (0 < value <= 1.0):
        raise Incorrect(
            f"max_grad_norm={value!r}: use a positive norm no larger than 1.0 (the Trainer's "
            "default, which the tutorial's run must have turned off)"
        )
