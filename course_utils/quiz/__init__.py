"""Check-your-understanding quizzes: banks, the widget, the text fallback, saved progress.

Used at the end of every notebook (``quiz.show("03")``) and by the predict-first prompts.
"""

# The package's public API is core's __all__ (one list, kept there).
from course_utils.quiz.core import *  # noqa: F403
from course_utils.quiz.core import __all__  # noqa: F401
