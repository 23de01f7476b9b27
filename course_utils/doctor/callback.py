"""``DoctorCallback``: the doctor as a Hugging Face ``Trainer`` callback. At ``on_train_begin`` it
checks the model, the arguments, the optimizer and the GradScaler the Trainer made; with
``audit=True`` it also watches the first training step with the course's ``PrecisionAudit`` and
says what really ran (e.g. "fp32" for ``fp16=True`` on a CPU).

    trainer = Trainer(..., callbacks=[DoctorCallback()])
    trainer.train()           # prints the doctor's report, then the audit's verdict after step 1

Taught in notebook 09.
"""

from __future__ import annotations

from transformers import TrainerCallback

from course_utils.doctor import diagnose
from course_utils.doctor.machine import resolve
from course_utils.doctor.report import Report


def _audit_class():
    from course_utils.finetune.audit import PrecisionAudit  # imported only when an audit runs

    return PrecisionAudit


class DoctorCallback(TrainerCallback):
    """Run the doctor when training starts.

    - ``hardware``: as for ``diagnose`` (None: this machine);
    - ``audit``: also watch the first training step and report what ran (``audit_report``);
    - ``strict``: raise ``RuntimeError`` at the start of training when there is an error finding;
    - ``verbose``: print the report (and the audit's verdict).
    After training, ``report`` holds the doctor's Report and ``audit_report`` the audit's.
    """

    def __init__(self, *, hardware=None, audit: bool = True, strict: bool = False,
                 verbose: bool = True):  # fmt: skip
        for name, flag in (("audit", audit), ("strict", strict), ("verbose", verbose)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        self.hardware = resolve(hardware)  # a bad GPU name fails here, not at train time
        self.audit = audit
        self.strict = strict
        self.verbose = verbose
        self.report: Report | None = None
        self.audit_report = None
        self._audit = None

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        scaler = getattr(optimizer, "scaler", None)  # accelerate's AcceleratedOptimizer
        inner = getattr(optimizer, "optimizer", optimizer)
        self.report = diagnose(model=model, args=args, optimizer=inner, scaler=scaler,
                               hardware=self.hardware)  # fmt: skip
        if self.verbose:
            print(f"precision doctor, before step 1:\n{self.report}")
        if self.strict and not self.report.ok:
            raise RuntimeError(
                "the precision doctor found errors: "
                + ", ".join(f.code for f in self.report.errors)
            )
        if self.audit and model is not None:
            self._audit = _audit_class()()
            self._audit.on_train_begin(args, state, control, model=model, optimizer=optimizer)

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        if self._audit is None:
            return
        self._audit.on_step_end(args, state, control, optimizer=optimizer)
        self._audit.on_train_end(args, state, control)  # one step is enough: remove the hooks
        self.audit_report = self._audit.report()
        self._audit = None
        if self.verbose:
            print(f"precision audit, after step 1: {self.audit_report.verdict}")

    def on_train_end(self, args, state, control, **kwargs):
        if self._audit is not None:  # training ended before a step
            self._audit.on_train_end(args, state, control)
            self.audit_report = self._audit.report()
            self._audit = None
