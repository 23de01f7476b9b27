"""A real learner's click path: JupyterLab in Debian's Chromium, a quiz, a wrong and a right answer.

Starts JupyterLab on a free localhost port (fresh config, workspace and settings in a temporary
folder), opens a notebook that shows the 00_start_here quiz, runs it, answers the first question
wrong (the hint appears, the score stays) and then right ("Correct!", the score goes up, the
progress file records it). The server and its kernels are stopped by process id.

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

from course_utils.quiz_bank import load_quiz
from course_utils.quiz_widget import plain

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
QUIZ_ID = "00_start_here"
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


def write_notebook(root: pathlib.Path) -> pathlib.Path:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Check your understanding"),
            nbformat.v4.new_code_cell(f'from course_utils import quiz\n\nquiz.show("{QUIZ_ID}")'),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    path = root / "quiz_demo.ipynb"
    nbformat.write(nb, path)
    return path


def write_quiet_settings(settings: pathlib.Path) -> None:
    """No news or update checks (this machine is offline) and no toasts over the notebook."""
    folder = settings / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True)
    (folder / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )


@contextlib.contextmanager
def jupyterlab(tmp: pathlib.Path):
    """Start JupyterLab; yield (base_url, token, progress_file); stop it and its kernels by pid."""
    root, settings = tmp / "root", tmp / "settings"
    root.mkdir()
    write_notebook(root)
    write_quiet_settings(settings)
    token, port = secrets.token_hex(16), free_port()
    progress_file = tmp / "progress.json"
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
        "--LabApp.news_url=",
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


def test_quiz_in_jupyterlab_wrong_then_right(tmp_path):
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} not found: install Debian's Chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        skip_or_fail("Python Playwright is not installed")

    question = next(q for q in load_quiz(QUIZ_ID).questions if q.type == "single")
    total = len(load_quiz(QUIZ_ID).questions)
    right = next(plain(c.text) for c in question.choices if c.correct)
    wrong_choice = next(c for c in question.choices if not c.correct)
    started = time.monotonic()

    with jupyterlab(tmp_path) as (base, token, progress_file), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 3000})
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
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            box = page.locator(f".course-quiz-q-{question.id}")
            score = page.locator(".course-quiz-score")
            expect(box).to_be_visible()
            page.set_default_timeout(STEP_S * 1000)
            expect(score).to_contain_text(f"Score: 0 / {total} correct")

            box.get_by_label(plain(wrong_choice.text), exact=True).check()
            box.get_by_role("button", name="Check").click()
            expect(box.locator(".course-quiz-feedback")).to_contain_text("Not quite")
            expect(box.locator(".course-quiz-feedback")).to_contain_text(
                plain(wrong_choice.feedback)[:40]
            )
            expect(box.locator(".course-quiz-hint")).to_contain_text("Hint:")
            expect(box.locator(".course-quiz-hint")).to_contain_text(plain(question.hint)[:30])
            expect(score).to_contain_text(f"Score: 0 / {total} correct")

            box.get_by_label(right, exact=True).check()
            box.get_by_role("button", name="Check").click()
            expect(box.locator(".course-quiz-feedback")).to_contain_text("Correct!")
            expect(score).to_contain_text(f"Score: 1 / {total} correct")
            expect(box.locator(".course-quiz-hint")).to_have_text("")

            shot = os.environ.get("COURSE_BROWSER_SCREENSHOT")
            if shot:
                page.locator(".course-quiz").screenshot(path=shot)
        except Exception:
            failure = tmp_path / "failure.png"
            with contextlib.suppress(Exception):
                page.screenshot(path=str(failure), full_page=True)
            print(f"screenshot of the failure: {failure}")
            raise
        finally:
            browser.close()
        saved = json.loads(progress_file.read_text())
        assert saved["quizzes"][QUIZ_ID][question.id] == {"solved": True, "attempts": 2}
    print(f"browser test: {time.monotonic() - started:.1f} s")
