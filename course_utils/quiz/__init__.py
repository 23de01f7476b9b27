"""Check-your-understanding quizzes: banks, the widget, the text fallback, saved progress.

Used at the end of every notebook (``quiz.show("03")``) and by the predict-first prompts.
"""

from course_utils.quiz.core import (
    InvalidAnswerError,
    ProgressWarning,
    QuestionResult,
    QuizBankError,
    Score,
    UnknownQuestionError,
    UnknownQuizError,
    answer_key,
    grade,
    list_quizzes,
    load_quiz,
    predict,
    print_quiz,
    reset,
    revisit,
    show,
)

__all__ = [
    "InvalidAnswerError",
    "ProgressWarning",
    "QuestionResult",
    "QuizBankError",
    "Score",
    "UnknownQuestionError",
    "UnknownQuizError",
    "answer_key",
    "grade",
    "list_quizzes",
    "load_quiz",
    "predict",
    "print_quiz",
    "reset",
    "revisit",
    "show",
]
