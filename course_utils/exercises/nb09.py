"""Checks for the exercises of notebook 09 (the classic failures, broken on purpose).

Taught in notebook 09, section "11. Exercises: predict the doctor's findings". Each exercise is a
short broken training script under ``data/doctor_exercises/``, judged as if it ran on the GPU
named in ``EXERCISES``. The learner predicts the set of finding codes the precision doctor gives
it, before running the doctor; ``check_predicted_codes(script, predicted)`` compares the
prediction with what ``course_utils.doctor.diagnose(script=..., hardware=...)`` finds now (so the
check follows the doctor), and explains a wrong guess without giving the answer away.

    show_exercise("t4_fp16_loop.py")              # the script, with line numbers
    check_predicted_codes("t4_fp16_loop.py", {"fp16-on-cpu"})
"""

from __future__ import annotations

import difflib
import pathlib
from collections.abc import Iterable

from course_utils.data import data_dir
from course_utils.exercises.registry import Incorrect, evaluate, exercise

# script -> the hardware the exercise judges it on (a GPU name the doctor knows)
EXERCISES: dict[str, str] = {
    "t4_fp16_loop.py": "Tesla T4",
    "a100_gemma_sft.py": "NVIDIA A100-SXM4-80GB",
    "t4_bf16_resume.py": "Tesla T4",
}

HINT = (
    "Read the script line by line against the doctor's catalogue (CODES, the table at the top of "
    "the notebook), for the GPU named in its first line. Mind the defaults nobody wrote down: "
    "transformers 5 loads a checkpoint in the dtype it was saved in, TRL's SFTConfig turns bf16 "
    "on, accelerate's FSDP reduces gradients in the parameters' dtype."
)

# Wrong guesses learners make, per script: code -> why the doctor does not find it there.
NOT_HERE: dict[str, dict[str, str]] = {
    "t4_fp16_loop.py": {
        "clip-before-unscale": "scaler.unscale_(optimizer) comes before clip_grad_norm_ here: "
        "that is the right order.",
        "backward-in-autocast": "backward() is called after the `with torch.autocast(...)` "
        "block has ended (look at the indentation).",
        "scaler-not-checkpointed": "this script saves no checkpoint at all.",
        "fp16-on-cpu": "there is no Trainer and no fp16=True flag here, and the script runs on a "
        "T4, a CUDA GPU.",
        "fp16-on-bf16-checkpoint": "gpt2's published weights are fp32, not a bf16 checkpoint.",
        "bf16-emulated": "nothing asks for bf16: the autocast is fp16, which a T4 runs natively.",
        "scaler-with-bf16": "nothing here is bf16: the weights are fp16 (model.half()) and the "
        "autocast is fp16.",
        "pure-bf16": "nothing here is bf16: model.half() makes the weights fp16.",
    },
    "a100_gemma_sft.py": {
        "bf16-emulated": "an A100 (compute capability 8.0) has native bf16.",
        "tf32-off": "this run is not fp32: TRL's SFTConfig turns bf16 on when neither flag is given.",
        "fp16-on-bf16-checkpoint": "nothing asks for fp16 here: SFTConfig's default is bf16=True.",
        "fp16-on-cpu": "nothing asks for fp16 here, and the run is on GPUs.",
        "scaler-with-bf16": "there is no GradScaler here (the Trainer makes one only for fp16).",
        "qlora-fp32-compute": "the model is not quantized: there is no BitsAndBytesConfig.",
        "bf16-needs-use-cpu": "the run is on A100s: TrainingArguments raises that only on a "
        "machine without a GPU.",
    },
    "t4_bf16_resume.py": {
        "clip-before-unscale": "scaler.unscale_(optimizer) comes before clip_grad_norm_ here: "
        "that is the right order.",
        "backward-in-autocast": "backward() is called after the `with torch.autocast(...)` "
        "block has ended (look at the indentation).",
        "pure-bf16": "the weights are fp32 (Net() builds fp32 parameters); autocast makes bf16 "
        "copies of them for the forward pass.",
        "deprecated-cuda-amp": "torch.amp.GradScaler(device) is the current spelling.",
        "fp16-trainable-weights": "nothing here is fp16: the autocast is bf16 and the weights fp32.",
        "tf32-off": "this run is bf16 autocast, not fp32, and a T4 has no TF32 anyway.",
    },
}


def exercise_dir() -> pathlib.Path:
    """``data/doctor_exercises``: the exercises' scripts."""
    return data_dir() / "doctor_exercises"


def _check_script(script) -> str:
    if not isinstance(script, str):
        raise TypeError(
            f"script must be the name of an exercise script, one of {', '.join(EXERCISES)}; "
            f"got {type(script).__name__}"
        )
    name = pathlib.PurePath(script).name
    if name not in EXERCISES:
        close = difflib.get_close_matches(name, list(EXERCISES), n=1)
        raise ValueError(
            f"no exercise script {script!r}; the exercises are: {', '.join(EXERCISES)}"
            + (f" (did you mean {close[0]!r}?)" if close else "")
        )
    return name


def exercise_script(script: str) -> pathlib.Path:
    """The path of one exercise script (``"t4_fp16_loop.py"``)."""
    return exercise_dir() / _check_script(script)


def show_exercise(script: str) -> None:
    """Print an exercise script with line numbers (the doctor's findings name lines)."""
    path = exercise_script(script)
    print(f"{path.name} (judge it on: {EXERCISES[path.name]})")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        print(f"{number:3d}  {line}")


def doctor_report(script: str):
    """The doctor's Report on one exercise script, on the exercise's GPU (the answer)."""
    from course_utils.doctor import diagnose

    name = _check_script(script)
    return diagnose(script=exercise_script(name), hardware=EXERCISES[name])


def expected_codes(script: str) -> set[str]:
    """The codes the doctor finds in one exercise script, on the exercise's GPU."""
    return set(doctor_report(script).codes)


def _as_codes(predicted) -> set[str]:
    from course_utils.doctor import CODES

    if isinstance(predicted, str):
        raise Incorrect(
            f"give a set of codes, e.g. {{{predicted!r}}}, not a single string",
            hint='A set literal: {"code-one", "code-two"}; an empty set() if you predict none.',
        )
    if not isinstance(predicted, (set, frozenset, list, tuple)):
        raise Incorrect(
            f"give a set of finding codes (strings), got {type(predicted).__name__} {predicted!r}"
        )
    codes = set()
    for item in predicted:
        if not isinstance(item, str):
            raise Incorrect(f'each code is a string, like "tf32-off"; got {item!r}')
        if item not in CODES:
            close = difflib.get_close_matches(item, list(CODES), n=1)
            raise Incorrect(
                f"{item!r} is not one of the doctor's codes"
                + (f" (did you mean {close[0]!r}?)" if close else "")
                + f"; the codes are: {', '.join(CODES)}"
            )
        codes.add(item)
    return codes


def _lines(findings) -> str:
    where = sorted({f.line for f in findings if f.line is not None})
    if not where:
        return "the objects it builds"
    return ("line " if len(where) == 1 else "lines ") + ", ".join(str(n) for n in where)


def _judge(script: str, predicted) -> None:
    codes = _as_codes(predicted)
    report = doctor_report(script)
    expected = set(report.codes)
    extra = sorted(codes - expected)
    missing = [f for f in report.findings if f.code not in codes]
    problems = []
    for code in extra:
        why = NOT_HERE.get(script, {}).get(code, "the doctor does not find it in this script.")
        problems.append(f"{code!r}: {why}")
    if missing:
        count = len({f.code for f in missing})
        problems.append(
            f"the doctor finds {count} more problem{'s' if count != 1 else ''} than you "
            f"predicted: look again at {_lines(missing)}."
        )
    if problems:
        raise Incorrect(" ".join(problems))


def _register(script: str) -> None:
    name = "09." + script.removesuffix(".py")

    def check_predicted_codes(predicted):
        _judge(script, predicted)

    exercise(name, hint=HINT, title=f"Predict the doctor's findings for {script}")(
        check_predicted_codes
    )


for _script in EXERCISES:
    _register(_script)


def check_predicted_codes(script: str, predicted: Iterable[str]) -> None:
    """Print whether ``predicted`` (a set of codes) is what the doctor finds in exercise
    ``script`` on the exercise's GPU, with a hint when it is not."""
    name = _check_script(script)
    print(evaluate("09." + name.removesuffix(".py"), predicted))
