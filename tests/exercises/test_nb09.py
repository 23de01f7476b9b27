"""The checks of notebook 09: predict the doctor's findings for three broken scripts. Right answers
pass; a wrong guess is explained without giving the missing codes away; bad input gets a clear
message. The scripts are ones the doctor's own tests never saw, so the pinned findings below also
test the doctor."""

import pytest

from course_utils.doctor import CODES
from course_utils.exercises import evaluate
from course_utils.exercises.nb09 import (
    EXERCISES,
    NOT_HERE,
    check_predicted_codes,
    exercise_script,
    expected_codes,
    show_exercise,
)

ANSWERS = {
    "t4_fp16_loop.py": {"fp16-trainable-weights", "deprecated-cuda-amp"},
    "a100_gemma_sft.py": {"pure-bf16", "bf16-gradient-reduce"},
    "t4_bf16_resume.py": {"bf16-emulated", "scaler-with-bf16", "scaler-not-checkpointed"},
}


def verdict(script, answer):
    return evaluate("09." + script.removesuffix(".py"), answer)


@pytest.mark.parametrize("script", sorted(EXERCISES))
def test_the_doctor_finds_the_pinned_codes(script):
    assert expected_codes(script) == ANSWERS[script]


@pytest.mark.parametrize("script", sorted(EXERCISES))
def test_right_answers_pass_as_set_list_or_tuple(script):
    for kind in (set, frozenset, list, tuple):
        assert verdict(script, kind(sorted(ANSWERS[script]))).passed


def test_an_extra_code_is_explained_for_this_script():
    result = verdict("t4_fp16_loop.py", ANSWERS["t4_fp16_loop.py"] | {"clip-before-unscale"})
    assert not result.passed
    assert "'clip-before-unscale'" in result.message and "right order" in result.message


def test_missing_codes_point_to_lines_not_to_the_codes():
    result = verdict("t4_bf16_resume.py", {"scaler-with-bf16"})
    assert not result.passed
    assert "2 more problems" in result.message and "look again at lines" in result.message
    assert "bf16-emulated" not in result.message and "scaler-not-checkpointed" not in result.message
    assert result.hint  # the exercise's hint comes with it


def test_an_empty_prediction_is_a_prediction():
    result = verdict("a100_gemma_sft.py", set())
    assert not result.passed and "2 more problems" in result.message


def test_a_code_the_doctor_does_not_know_gets_a_suggestion():
    result = verdict("t4_fp16_loop.py", {"tf32-of"})
    assert "did you mean 'tf32-off'" in result.message and "the codes are:" in result.message


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ("tf32-off", "not a single string"),
        ({"tf32-off": True}, "give a set of finding codes"),
        (42, "give a set of finding codes"),
        ({1, 2}, "each code is a string"),
    ],
)
def test_answers_of_the_wrong_shape(answer, says):
    result = verdict("t4_fp16_loop.py", answer)
    assert not result.passed and says in result.message


@pytest.mark.parametrize("answer", [..., {...}, [..., "tf32-off"]])
def test_an_unfinished_stub_is_not_done_yet(answer):
    assert verdict("t4_fp16_loop.py", answer).message.startswith("Not done yet")


def test_the_explanations_name_codes_the_doctor_does_not_find_there():
    for script, why in NOT_HERE.items():
        assert script in EXERCISES
        for code in why:
            assert code in CODES and code not in ANSWERS[script], (script, code)


def test_each_script_names_its_gpu_in_its_first_line():
    short = {"Tesla T4": "Tesla T4", "NVIDIA A100-SXM4-80GB": "A100"}
    for script, gpu in EXERCISES.items():
        first = exercise_script(script).read_text(encoding="utf-8").splitlines()[0]
        assert short[gpu] in first, script


def test_check_predicted_codes_prints_the_verdict(capsys):
    check_predicted_codes("t4_fp16_loop.py", ANSWERS["t4_fp16_loop.py"])
    assert capsys.readouterr().out == "Correct!\n"
    check_predicted_codes("data/doctor_exercises/t4_fp16_loop.py", {"tf32-off"})
    assert capsys.readouterr().out.startswith("Not yet: 'tf32-off'")


def test_unknown_scripts_get_a_clear_error():
    with pytest.raises(ValueError, match="no exercise script 't4_fp16_lop.py'.*did you mean"):
        check_predicted_codes("t4_fp16_lop.py", set())
    with pytest.raises(TypeError, match="script must be the name of an exercise script"):
        show_exercise(3)


def test_show_exercise_numbers_the_lines(capsys):
    show_exercise("t4_fp16_loop.py")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "t4_fp16_loop.py (judge it on: Tesla T4)"
    assert lines[1].startswith("  1  ") and any("model.half()" in line for line in lines)
