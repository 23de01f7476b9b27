"""Helpers for the course "Mixed precision training: bfloat16 vs float16 in practice".

Every notebook starts with ``from course_utils import setup; env = setup(seed=0)``.
Machinery lives here; narrative lives in the notebooks.
"""

from course_utils.env import CourseEnv, setup

__all__ = ["CourseEnv", "setup"]
__version__ = "0.1.0"
