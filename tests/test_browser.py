"""A real learner's click path: JupyterLab in Debian's Chromium at 1280x720 (a projector), a
predict-first prompt, a shuffled quiz, a wrong and a right answer, and a rerun.

Starts JupyterLab on a free localhost port (fresh config, workspace and settings in a temporary
folder) with a progress file holding a learner id chosen so that the right choices do not sit
where the bank puts them. The notebook predicts one question (``quiz.predict``), revisits it
(``quiz.revisit``) and shows the 00_start_here quiz. The test saves a prediction, goes to a
single-choice question with Next (one question at a time), checks that its choices come in the
learner's order, answers it wrong (the hint appears, the score stays, the score and the Check
button are both on screen), asks for the answer (it takes the hint's place), then right: the
right choice is found by its id, wherever it sits. Then it reruns every cell: the prediction is
revisited, and the solved question shows the learner's answer selected. The server and its
kernels are stopped by process id.

Needs /usr/bin/chromium (``apt-get install chromium``); Playwright's own browser download is not
used. Skipped when Chromium is missing, except in CI (``CI=true``), where that is a failure.
Set ``COURSE_BROWSER_SCREENSHOT=/path.png`` to keep a screenshot of the quiz.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import nbformat
import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, REPO_ROOT, VIEWPORT

from course_utils.exercises.layout import FOLD_LINE
from course_utils.quiz.bank import Question, load_quiz
from course_utils.quiz.text import choice_order
from course_utils.quiz.widget import plain

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

QUIZ_ID = "00_start_here"
SOLUTION_TEXT = "the-solution-42"
SOLUTION_FOLD = FOLD_LINE  # the first line, which JupyterLab shows on the fold
SERVER_START_S = 90
KERNEL_RUN_S = 120
STEP_S = 20


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run in CI)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_notebook(root: pathlib.Path, predicted: str) -> pathlib.Path:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Predict, then check your understanding"),
            nbformat.v4.new_code_cell(
                f'from course_utils import quiz\n\nquiz.predict("{QUIZ_ID}", "{predicted}")'
            ),
            nbformat.v4.new_code_cell(f'quiz.revisit("{QUIZ_ID}", "{predicted}")'),
            nbformat.v4.new_code_cell(f'quiz.show("{QUIZ_ID}")'),
            # an exercise as the course lays it out: the stub, then its collapsed solution
            nbformat.v4.new_code_cell(
                "answer = ...  # your answer", metadata={"tags": ["exercise"]}
            ),
            nbformat.v4.new_code_cell(
                f"{SOLUTION_FOLD}\nanswer = {SOLUTION_TEXT!r}",
                metadata={"tags": ["solution"], "jupyter": {"source_hidden": True}},
            ),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    path = root / "quiz_demo.ipynb"
    nbformat.write(nb, path)
    return path


def shipped_lab_settings() -> pathlib.Path:
    """The overrides.json that ``make install`` copies into this environment (lab/overrides.json):
    the test runs JupyterLab with it, as ``make lab`` does, and checks that no toast shows."""
    path = pathlib.Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    assert path.is_file(), f"{path} is missing: run `make lab-settings` (make install does it)"
    assert json.loads(path.read_text()) == json.loads(
        (REPO_ROOT / "lab" / "overrides.json").read_text()
    )
    return path


def moved_learner(questions: list[Question]) -> str:
    """A learner id whose order puts every right single choice of ``questions`` away from its
    place in the bank (so finding it by position would fail)."""
    for n in range(10_000):
        learner = f"{n:032x}"
        if all(
            [c.id for c in choice_order(QUIZ_ID, q, learner)].index(q.key)
            != [c.id for c in q.choices].index(q.key)
            for q in questions
        ):
            return learner
    raise AssertionError("no learner id moves every right choice")  # pragma: no cover


@contextlib.contextmanager
def jupyterlab(tmp: pathlib.Path, predicted: str, learner: str):
    """Start JupyterLab; yield (base_url, token, progress_file); stop it and its kernels by pid."""
    root, settings = tmp / "root", tmp / "settings"
    root.mkdir()
    write_notebook(root, predicted)
    shipped_lab_settings()
    token, port = secrets.token_hex(16), free_port()
    progress_file = tmp / "progress.json"
    progress_file.write_text(json.dumps({"version": 2, "learner_id": learner, "quizzes": {}}))
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        IPYTHONDIR=str(tmp / "ipython"),
        COURSE_PROGRESS_FILE=str(progress_file),
        MPLBACKEND="agg",
    )
    env.pop("COURSE_QUIZ_MODE", None)
    log = (tmp / "jupyterlab.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        f"--LabApp.user_settings_dir={settings}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    server = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(server, base, token, tmp / "jupyterlab.log")
        yield base, token, progress_file
    finally:
        stop_server(server, base, token)
        log.close()


def api(base: str, token: str, path: str, method: str = "GET"):
    request = urllib.request.Request(
        base + path, method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"null")


def wait_for_server(server, base: str, token: str, log: pathlib.Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            api(base, token, "/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer in {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def stop_server(server, base: str, token: str) -> None:
    """Stop the server and every process it started (kernels run in their own sessions)."""
    import psutil

    try:
        children = psutil.Process(server.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    with contextlib.suppress(OSError, urllib.error.URLError):
        api(base, token, "/api/shutdown", method="POST")  # shuts kernels down cleanly
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def labels(box) -> list[str]:
    """The radio labels of a question box, top to bottom."""
    return [t.strip() for t in box.locator("label").all_inner_texts() if t.strip()]


def on_screen(locator) -> bool:
    box = locator.bounding_box()
    return (
        box is not None
        and box["y"] >= 0
        and box["y"] + box["height"] <= VIEWPORT["height"]
        and box["x"] + box["width"] <= VIEWPORT["width"]
    )


def run_all_and_wait(page) -> None:
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")


def test_quiz_in_jupyterlab_predict_shuffle_wrong_right_rerun(tmp_path):
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} not found: install Debian's Chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        skip_or_fail("Python Playwright is not installed")

    bank = load_quiz(QUIZ_ID)
    singles = [q for q in bank.questions if q.type == "single"]
    predicted = next((q for q in singles if getattr(q, "predict", False)), singles[-1])
    question = next(q for q in singles if q.id != predicted.id)
    index = bank.questions.index(question)
    total = len(bank.questions)
    learner = moved_learner([question, predicted])
    order = [plain(c.text) for c in choice_order(QUIZ_ID, question, learner)]
    right = plain(question.choice(question.key).text)  # found by id, wherever it sits
    wrong_choice = next(c for c in question.choices if not c.correct)
    predicted_right = plain(predicted.choice(predicted.key).text)
    started = time.monotonic()

    with (
        jupyterlab(tmp_path, predicted.id, learner) as (base, token, progress_file),
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(KERNEL_RUN_S * 1000)
            page.route(re.compile(r"^(?!http://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
            page.goto(f"{base}/lab/tree/quiz_demo.ipynb?reset&token={token}")
            page.wait_for_function(
                """() => {
                    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                    return w && w.sessionContext && w.sessionContext.session
                        && w.sessionContext.kernelDisplayStatus === 'idle';
                }"""
            )
            run_all_and_wait(page)
            # the shipped settings: no "official Jupyter news?" toast over the outputs
            expect(page.locator(".Toastify__toast")).to_have_count(0)

            # the predict-first prompt: no verdict when saved
            predict_box = page.locator(".course-quiz-predict")
            expect(predict_box).to_be_visible()
            page.set_default_timeout(STEP_S * 1000)
            assert labels(predict_box) == [
                plain(c.text) for c in choice_order(QUIZ_ID, predicted, learner)
            ]
            predict_box.get_by_label(predicted_right, exact=True).check()
            predict_box.get_by_role("button", name="Save my prediction").click()
            expect(predict_box.locator(".course-quiz-feedback")).to_contain_text("Prediction saved")
            expect(predict_box.locator(".course-quiz-feedback")).not_to_contain_text("Correct")
            expect(page.locator(".course-quiz-revisit")).to_contain_text(
                "You recorded no prediction"  # it ran before the prediction was saved
            )

            # the quiz, one question at a time, the score on top
            quiz_box = page.locator(".course-quiz").filter(has=page.locator(".course-quiz-top"))
            score = quiz_box.locator(".course-quiz-score")
            expect(score).to_contain_text(f"Score: 0 / {total} correct")  # shown before it
            for _ in range(index):
                quiz_box.get_by_role("button", name="Next").click()
            box = quiz_box.locator(f".course-quiz-q-{question.id}")
            expect(box).to_be_visible()
            expect(box).to_contain_text(f"Question {index + 1} of {total}")
            assert quiz_box.locator(".course-quiz-question").count() == 1
            assert labels(box) == order  # the learner's order, not the bank's

            box.get_by_label(plain(wrong_choice.text), exact=True).check()
            box.get_by_role("button", name="Check").click()
            feedback, hint = box.locator(".course-quiz-feedback"), box.locator(".course-quiz-hint")
            expect(feedback).to_contain_text("Not quite")
            expect(feedback).to_contain_text(plain(wrong_choice.feedback)[:40])
            expect(hint).to_contain_text("Hint:")
            expect(hint).to_contain_text(plain(question.hint)[:30])
            expect(score).to_contain_text(f"Score: 0 / {total} correct")
            quiz_box.locator(".course-quiz-top").scroll_into_view_if_needed()
            check = box.get_by_role("button", name="Check")
            assert on_screen(score) and on_screen(check), "score and Check not both on screen"

            box.get_by_role("button", name="Show answer").click()
            expect(hint).to_contain_text("Answer:")
            expect(hint).not_to_contain_text("Hint:")  # replaced, not stacked
            expect(feedback).to_contain_text("Not quite")

            shot = os.environ.get("COURSE_BROWSER_SCREENSHOT")
            if shot:
                page.screenshot(path=shot)

            box.get_by_label(right, exact=True).check()
            box.get_by_role("button", name="Check").click()
            expect(feedback).to_contain_text("Correct!")
            expect(score).to_contain_text(f"Score: 1 / {total} correct")
            expect(hint).to_have_text("")

            # a rerun: the prediction is revisited, the answer is selected again
            run_all_and_wait(page)
            page.set_default_timeout(KERNEL_RUN_S * 1000)
            expect(page.locator(".course-quiz-revisit")).to_contain_text("You predicted")
            page.set_default_timeout(STEP_S * 1000)
            expect(page.locator(".course-quiz-revisit")).to_contain_text(predicted_right[:40])
            expect(page.locator(".course-quiz-predict")).to_contain_text("saved earlier")
            quiz_box = page.locator(".course-quiz").filter(has=page.locator(".course-quiz-top"))
            expect(quiz_box.locator(".course-quiz-score")).to_contain_text(
                f"Score: 2 / {total} correct"  # the question and the (right) prediction
            )
            for _ in range(index):
                quiz_box.get_by_role("button", name="Next").click()
            box = quiz_box.locator(f".course-quiz-q-{question.id}")
            expect(box.get_by_label(right, exact=True)).to_be_checked()
            expect(box.locator(".course-quiz-feedback")).to_contain_text("right before")
            # the exercise's solution: a fold, not the answer in plain view; one click opens it
            solution = page.locator(".jp-CodeCell").last
            expect(solution.locator(".jp-InputPlaceholder")).to_be_visible()
            expect(solution.locator(".jp-PlaceholderText")).to_have_text(SOLUTION_FOLD)
            expect(page.get_by_text(SOLUTION_TEXT)).to_have_count(0)
            solution.locator(".jp-InputPlaceholder").click()
            expect(solution.get_by_text(SOLUTION_TEXT)).to_be_visible()
            if shot:
                page.screenshot(path=shot.replace(".png", "_rerun.png"))
                page.locator(".course-quiz-predict").screenshot(
                    path=shot.replace(".png", "_predict.png")
                )
                page.locator(".course-quiz-revisit").screenshot(
                    path=shot.replace(".png", "_revisit.png")
                )
        except Exception:
            failure = tmp_path / "failure.png"
            with contextlib.suppress(Exception):
                page.screenshot(path=str(failure), full_page=True)
            print(f"screenshot of the failure: {failure}")
            raise
        finally:
            browser.close()
        saved = json.loads(progress_file.read_text())
        assert saved["learner_id"] == learner
        assert saved["quizzes"][QUIZ_ID][question.id] == {
            "solved": True,
            "attempts": 2,
            "answer": question.key,
        }
        assert saved["quizzes"][QUIZ_ID][predicted.id]["prediction"] == predicted.key
    print(f"browser test: {time.monotonic() - started:.1f} s")
