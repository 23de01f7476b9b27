"""``python -m course_utils.doctor FILE [--gpu NAME] [--json]``: check a training script or a
notebook for precision mistakes, reading it statically (it is never executed).

Exit status: 0 no error-severity finding, 1 at least one, 2 a file it cannot read or parse (or a
bad ``--gpu`` name), with one line on stderr.

Taught in notebook 09.
"""

from __future__ import annotations

import argparse
import sys

from course_utils.doctor import diagnose
from course_utils.doctor.static import DoctorInputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.doctor",
        description="Find precision mistakes in a training script or notebook, without running it.",
    )
    parser.add_argument("file", help="a .py training script or a .ipynb notebook")
    parser.add_argument(
        "--gpu",
        metavar="NAME",
        help='judge it as if it ran on this GPU, e.g. "Tesla T4", "A100", or "cpu" for no GPU '
        "(default: this machine)",
    )
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    ns = parser.parse_args(argv)
    try:
        report = diagnose(script=ns.file, hardware=ns.gpu)
    except (DoctorInputError, ValueError) as exc:
        print(f"doctor: {exc}", file=sys.stderr)
        return 2
    print(report.to_json() if ns.json else report)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
