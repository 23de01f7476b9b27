"""The precision doctor: names the precision mistakes the course teaches in *your* setup, before
step one, each with the fix and a link to where people hit it.

    from course_utils.doctor import diagnose
    print(diagnose(script="train.py"))                      # read a script, never run it
    print(diagnose(script="train.py", hardware="Tesla T4")) # ... as if it ran on a T4
    print(diagnose(model=model, args=training_args))        # live objects

    python -m course_utils.doctor train.py [--gpu "Tesla T4"] [--json]   # exit 1 on an error

``DoctorCallback`` runs the same checks at the start of ``Trainer.train()`` and, with the precision
audit, says what really ran after the first step. ``CODES`` is the catalogue of finding codes.

Taught in notebook 09.
"""

from __future__ import annotations

import pathlib

from course_utils.doctor import live, static
from course_utils.doctor.codes import CODES, SEVERITIES, Code
from course_utils.doctor.machine import Machine, resolve
from course_utils.doctor.report import Finding, Report
from course_utils.doctor.static import DoctorInputError

__all__ = [
    "CODES",
    "SEVERITIES",
    "Code",
    "DoctorCallback",
    "DoctorInputError",
    "Finding",
    "Machine",
    "Report",
    "diagnose",
]


def diagnose(
    *,
    model=None,
    args=None,
    optimizer=None,
    scaler=None,
    policy=None,
    script=None,
    hardware=None,
) -> Report:
    """Check a training setup for precision mistakes.

    - ``model``: a ``torch.nn.Module`` (its trainable weights' dtypes, its config's checkpoint
      dtype, its 4-bit quantization config);
    - ``args``: ``TrainingArguments`` / ``SFTConfig`` (anything with ``fp16`` and ``bf16``);
    - ``optimizer``: the weights it updates; ``scaler``: a ``torch.amp.GradScaler``;
    - ``policy``: an FSDP2 ``MixedPrecisionPolicy`` (or FSDP1 ``MixedPrecision``, accelerate's
      FSDP plugin, a dict);
    - ``script``: a path to a ``.py`` or ``.ipynb``, read statically (never executed);
    - ``hardware``: None (this machine), a ``HardwareReport``, or a GPU name like "Tesla T4"
      (``"cpu"``: a machine without a GPU) to ask "what if I ran this there?".

    Raises TypeError for arguments of the wrong kind, ValueError for an unknown GPU name, and
    ``DoctorInputError`` (a ValueError) for a script it cannot read or parse.
    """
    live.check_types(model=model, args=args, optimizer=optimizer, scaler=scaler, policy=policy)
    if script is not None and not isinstance(script, (str, pathlib.Path)):
        raise TypeError(f"script must be a path (str or pathlib.Path), got {type(script).__name__}")
    machine = resolve(hardware)
    findings = []
    if script is not None:
        findings += static.check_script(script, machine)
    if any(x is not None for x in (model, args, optimizer, scaler, policy)):
        findings += live.analyse(
            model=model, args=args, optimizer=optimizer, scaler=scaler, policy=policy,
            machine=machine,
        )  # fmt: skip
    return Report(findings)


def __getattr__(name: str):
    if name == "DoctorCallback":  # transformers is imported only when the callback is wanted
        from course_utils.doctor.callback import DoctorCallback

        return DoctorCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
