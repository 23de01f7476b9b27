"""Checks for the exercises of notebook 06 (NaN recovery).

Taught in notebook 06, section "6. Exercises" (exercises 1-4).

Every check first makes the answer a plain value of the expected type (``int``/``None``, ``str``,
a finite positive number, a ``bool``...) and only then compares: NaN, inf, a value of another
type, or an object whose ``__eq__`` says True to everything never passes.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator

from course_utils.exercises.registry import Incorrect, exercise, expect_callable

# Scenarios the bad-batch finder is tried on: (seed, bad step); None = a run without a bad batch.
FINDER_CASES = [(3, 37), (5, 2), (7, None)]
FP16_FAILING = {"precision": "fp16"}  # the run of exercise 3, as it fails
CHECK_STEPS = 6  # steps the check runs with the learner's setting
TUNABLE = ("precision", "lr", "max_grad_norm", "keep_fp32", "upcast_attention")
# Exercise 4: the three causes measured in section 3, and the actions to choose from.
CAUSES = ("finite_outlier", "nonfinite_value", "divergence")
ACTIONS = ("nothing", "rollback_skip", "lower_lr", "max_grad_norm", "fp32")
TUTORIAL_KEY = {
    "finite_outlier": "max_grad_norm",
    "nonfinite_value": "rollback_skip",
    "divergence": "lower_lr",
}
# Also right: rolling back and skipping the outlier batch gives the reference run itself.
ALSO_RIGHT = {("finite_outlier", "rollback_skip")}


@functools.lru_cache(maxsize=4)
def _batches(seed: int, bad_step: int | None) -> list[dict]:
    from course_utils.nan.scenarios import BadBatchScenario

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
        got = _step_or_none(find_bad_step(_batches(seed, bad_step)))
        if got != bad_step:
            where = "no bad batch" if bad_step is None else f"the bad batch at step {bad_step}"
            off_by_one = bad_step is not None and got == bad_step - 1
            raise Incorrect(
                f"for a run with {where} your function returned {got!r}"
                + (" (steps count from 1: batch i is used at step i + 1)" if off_by_one else "")
            )


def _step_or_none(value):
    """``value`` as a plain int (a numpy or tensor integer is fine) or None; else Incorrect."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or isinstance(value, numbers.Real)
        and not isinstance(value, numbers.Integral)
    ):
        raise Incorrect(
            f"find_bad_step returned {value!r} ({type(value).__name__}): return the step as an "
            "int, or None when no batch is bad"
        )
    try:
        return int(operator.index(value))  # an exact int, whatever the class's __eq__ says
    except TypeError:
        raise Incorrect(
            f"find_bad_step returned a {type(value).__name__}: return the step as an int, or "
            "None when no batch is bad"
        ) from None


def _plain_str(value, what: str) -> str:
    if type(value) is not str:
        raise Incorrect(f"{what} must be a plain str, got {type(value).__name__} {value!r}")
    return value


def _positive_number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Incorrect(f"{what} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise Incorrect(f"{what} must be a finite number > 0, got {value!r}")
    return number


def _setting(key, value):
    """One setting of exercise 3 as plain values; Incorrect if it is not of its kind."""
    key = _plain_str(key, "the setting's name")
    if key not in TUNABLE:
        raise Incorrect(f"{key!r} is not one of the settings to try here: {', '.join(TUNABLE)}")
    if key == "precision":
        return key, _plain_str(value, "precision")
    if key in ("lr", "max_grad_norm"):
        return key, _positive_number(value, key)
    if key == "upcast_attention":
        if type(value) is not bool:
            raise Incorrect(f"upcast_attention is True or False, got {value!r}")
        return key, value
    if not isinstance(value, (list, tuple)) or not value:  # keep_fp32
        raise Incorrect(
            f"keep_fp32 takes a list of module names (or endings such as 'mlp.c_proj'), got {value!r}"
        )
    return key, [_plain_str(name, "each name in keep_fp32") for name in value]


@functools.lru_cache(maxsize=1)
def _grown() -> tuple[float, object]:
    """(the growth factor of section 4's model, the fp16 report of find_first_nonfinite on it)."""
    from course_utils.nan.debug import find_first_nonfinite
    from course_utils.nan.scenarios import Fp16RangeScenario

    scenario = Fp16RangeScenario()
    model = scenario.load_model()
    report = find_first_nonfinite(model, scenario.batches[0], precision="fp16-emulated")
    return scenario.applied_growth, report


@exercise(
    "06.overflowing_module",
    hint="Run find_first_nonfinite(model, batch, precision='fp16-emulated') and read the whole "
    "report: if that module's inputs were finite, its own computation made the inf; if they "
    "were already non-finite, the value appeared in its parent's own code. The answer is a "
    "name from model.named_modules().",
    title="Find the module whose own computation overflows in fp16",
)
def check_overflowing_module(name):
    """``name``: the module (as in ``model.named_modules()``) where fp16 first overflows."""
    if type(name) is not str:
        raise Incorrect(f"answer with the module's name as a plain str, got {type(name).__name__}")
    _, report = _grown()
    if report is None:  # pragma: no cover - the scenario is built to overflow
        raise Incorrect("the fp16 scenario did not overflow here: please report this")
    answer = report.module if report.inputs_finite else report.module.rsplit(".", 1)[0]
    if name == answer:
        return None
    if name.rsplit(".", 1)[-1] == answer.rsplit(".", 1)[-1]:
        raise Incorrect(
            f"{name!r} is the right kind of module, but not the first one to overflow: "
            "modules finish in order, and the report names the first"
        )
    if answer.startswith(name + "."):
        raise Incorrect(f"{name!r} contains it: name the submodule itself")
    raise Incorrect(f"{name!r} is not where the first non-finite value appears")


@exercise(
    "06.single_fix",
    hint="Clipping and the learning rate act on gradients and updates; this run fails in the "
    "forward pass, in the modules exercise 2 found. On a T4 there is no bf16: what can you do "
    "with those modules?",
    title="On a T4 (no bf16): change one setting so that the fp16 run trains",
)
def check_single_fix(fix):
    """``fix``: a dict with ONE setting for ``Fp16RangeScenario().train(**fix)`` on a GPU
    without bf16, such that the run trains: every loss finite, no step skipped, and a held-out
    loss lower than before. The failing run is ``precision="fp16"``."""
    from course_utils.nan.scenarios import Fp16RangeScenario

    if not isinstance(fix, dict) or len(fix) != 1:
        raise Incorrect(f"give one setting as a dict, e.g. {{'lr': 1e-4}}, got {fix!r}")
    ((key, value),) = fix.items()
    key, value = _setting(key, value)
    fix = {key: value}
    if key == "precision" and value == "bf16":
        raise Incorrect(
            "bf16 trains (section 4), but a T4 has no bf16 units: "
            "torch.cuda.is_bf16_supported(including_emulation=False) is False there, and "
            "emulated bf16 is slow. Find a fix that keeps fp16",
            hint="Which modules overflow? Run only those outside autocast.",
        )
    if key == "precision" and value == "fp32":
        raise Incorrect(
            "fp32 trains, but it gives up mixed precision for the whole model: only a few "
            "modules overflow, and they alone can run in fp32",
            hint="keep_fp32 takes module names, or endings of names such as 'mlp.c_proj'.",
        )
    if key == "precision" and value == "fp16":
        raise Incorrect("that is the failing setting itself")
    growth, _ = _grown()
    scenario = Fp16RangeScenario(steps=CHECK_STEPS, growth=growth)
    try:
        history = scenario.train(**(FP16_FAILING | fix), progress=False)  # no bar in the check
    except (TypeError, ValueError) as err:
        raise Incorrect(f"{key}={value!r} does not run: {err}") from None
    finite = all(math.isfinite(loss) for loss in history.losses)
    if not finite or history.skipped_steps:
        extra = ""
        if key == "keep_fp32":
            extra = ": another module still overflows (run find_first_nonfinite again with it kept)"
        raise Incorrect(
            f"with {key}={value!r} the run still has NaN losses and skipped steps "
            f"({len(history.skipped_steps)} of {len(history)} skipped){extra}"
        )
    before = scenario.heldout_loss(scenario.load_model(grown=False))
    after = scenario.heldout_loss(scenario.last_model, "fp16")
    if not after < before:
        raise Incorrect(
            f"every step ran, but the held-out loss did not go down ({before:.3f} -> {after:.3f})"
        )
    return None


@exercise(
    "06.tutorial_question",
    hint="Section 3 measured each cause on the same run: which runs went NaN, which stayed finite "
    "but far above the reference, and which fix brought each one back? Actions: "
    + ", ".join(ACTIONS)
    + ".",
    title="The original tutorial's question: which cause needs which fix?",
)
def check_tutorial_answer(answer):
    """``answer``: a dict {cause: action} for the three causes of section 3 (``CAUSES``), each
    action one of ``ACTIONS``: what brought the run back to the reference run's loss (or
    "nothing" if it needed no fix)."""
    if not isinstance(answer, dict):
        raise Incorrect(f"answer with a dict {{cause: action}}, got {type(answer).__name__}")
    answer = {
        _plain_str(cause, "each cause"): _plain_str(action, f"the action for {cause!r}")
        for cause, action in answer.items()
    }
    missing = [cause for cause in CAUSES if cause not in answer]
    unknown = [cause for cause in answer if cause not in CAUSES]
    if missing or unknown:
        raise Incorrect(
            f"give one action for each cause {CAUSES}"
            + (f"; missing: {missing}" if missing else "")
            + (f"; not a cause here: {unknown}" if unknown else "")
        )
    for cause in CAUSES:
        if answer[cause] not in ACTIONS:
            raise Incorrect(f"{cause}: {answer[cause]!r} is not one of {ACTIONS}")
    messages = {
        ("finite_outlier", "nothing"): "the outlier run never went NaN (AdamW moved each weight "
        "by about lr in that step, Kingma & Ba, section 2.1), but its loss climbed after it and "
        "stayed far above the reference: the outlier lives on in AdamW's moments",
        ("finite_outlier", "lower_lr"): "section 3 did not lower the learning rate for the "
        "outlier: at any learning rate the outlier enters AdamW's moments. What kept it out?",
        ("finite_outlier", "fp32"): "the outlier is finite in bf16 and in fp32 alike: the "
        "precision does not enter",
        ("nonfinite_value", "max_grad_norm"): "a NaN or inf gradient has a non-finite norm, and "
        "clip_grad_norm_ multiplies every gradient by max_norm / NaN (or 0 x inf): still NaN",
        ("nonfinite_value", "lower_lr"): "any learning rate times a NaN gradient is NaN",
        ("nonfinite_value", "fp32"): "0/0 and inf x 0 are NaN in fp32 too: the fp32 run died at "
        "the same step",
        ("nonfinite_value", "nothing"): "the run died at the step of the non-finite value",
        ("divergence", "max_grad_norm"): "the clipped run at the high learning rate stayed far "
        "above the stable run: AdamW divides the gradient's scale out, so clipping changes "
        "little of its step",
        ("divergence", "rollback_skip"): "rolling back and skipping batches helps against a "
        "spike that a few batches trigger (PaLM, section 5); here the learning rate itself is "
        "too high, and the same run climbs again",
        ("divergence", "nothing"): "the loss climbed and stayed above the stable run's",
    }
    for cause in CAUSES:
        if answer[cause] != TUTORIAL_KEY[cause] and (cause, answer[cause]) not in ALSO_RIGHT:
            message = messages.get(
                (cause, answer[cause]), f"{answer[cause]!r} is not what fixed the {cause} run"
            )
            raise Incorrect(f"{cause}: {message}")
