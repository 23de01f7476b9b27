#!/usr/bin/env python
"""Build the course as a static site that a browser opens offline (``make site``).

python scripts/build_site.py OUT [--repo REPO]

Runs in ``.venv-site`` (requirements-site.txt), never needs the learners' venv or the network:

- every ``notebooks/NN_*.ipynb`` becomes ``OUT/NN_*.html`` through nbconvert's HTML exporter with
  the template in ``site_src/templates/course`` (the lab template without require.js, the widget
  manager, Mermaid and the MathJax CDN; solution cells folded). Stored outputs and plots are
  rendered as they are: nothing is executed. The notebooks' widget state is dropped, so a quiz
  widget shows the static HTML the course stores next to it;
- every quiz bank ``data/quizzes/*.json`` becomes ``OUT/quiz-ID.html``: the questions as
  ``course_utils``'s quiz text renders them (``question_html``), hint and answer in ``<details>``;
- every ``instructors/*.md`` becomes ``OUT/guide-STEM.html``;
- ``OUT/index.html`` lists them in course order, from ``site_src/index.md``;
- MathJax 2.7 (from the jupyter-server-mathjax package) is copied into ``OUT/assets/mathjax``.

Relative links are rewritten: a link to a rendered notebook or guide goes to its page, a link
to any other file of the repository goes to that file (relative to OUT), so the site works from
``file://``. Links that point to no file are listed (and make the build fail with --strict;
tests/test_site.py fails on them too).
"""

from __future__ import annotations

import argparse
import html
import os
import pathlib
import posixpath
import re
import shutil
import sys
import time
import types
import urllib.parse
import warnings
from dataclasses import dataclass

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SITE_SRC = REPO_ROOT / "site_src"
NOTEBOOK_RE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+\.ipynb$")
COURSE_TITLE = "Mixed precision training: bfloat16 vs float16 in practice"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
IPYNB_MARK = "course-ipynb:"


@dataclass
class Page:
    """One page of the site: its file name, its title (plain text) and its kind."""

    file: str
    title: str
    kind: str  # "notebook", "quiz", "guide"
    number: str = ""
    source: pathlib.Path | None = None


def quiz_modules(repo: pathlib.Path):
    """``course_utils.quiz``'s bank and text modules, imported without ``course_utils/__init__``
    (which imports torch, not installed in ``.venv-site``). They and what they import at the
    top (the quiz package) need only the standard library and markdown-it-py."""
    if "course_utils" not in sys.modules:
        stub = types.ModuleType("course_utils")
        stub.__path__ = [str(repo / "course_utils")]
        sys.modules["course_utils"] = stub
    import importlib

    return (
        importlib.import_module("course_utils.quiz.bank"),
        importlib.import_module("course_utils.quiz.text"),
    )


def plain_title(markdown_heading: str) -> str:
    text = re.sub(r"[*_`]", "", markdown_heading.lstrip("#").strip())
    return re.sub(r"\s+", " ", text)


def notebook_title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return plain_title(line)
    return ""


def markdown_renderer():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")


class LinkFixer:
    """Rewrites relative ``href``/``src`` values of a page made from a file in ``source_dir``."""

    ATTR_RE = re.compile(r'(\s(?:href|src))="([^"]*)"')

    def __init__(
        self,
        repo: pathlib.Path,
        out: pathlib.Path,
        page_of: dict[pathlib.Path, str],
        site_files: set[str],
    ):
        self.repo, self.out, self.page_of = repo.resolve(), out.resolve(), page_of
        self.site_files = site_files  # the site's own pages: the build links them itself
        self.broken: list[str] = []

    def fix(self, text: str, source_dir: pathlib.Path, page: str) -> str:
        def replace(match: re.Match) -> str:
            return f'{match.group(1)}="{self.target(match.group(2), source_dir, page)}"'

        return self.ATTR_RE.sub(replace, text)

    def target(self, url: str, source_dir: pathlib.Path, page: str) -> str:
        raw = html.unescape(url)
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme or parts.netloc or not parts.path or raw.startswith(("/", "#")):
            return url
        path = urllib.parse.unquote(parts.path)
        if path in self.site_files or path.startswith("assets/"):
            return url
        target = pathlib.Path(os.path.normpath(source_dir / path))
        fragment = f"#{parts.fragment}" if parts.fragment else ""
        if target in self.page_of:
            return html.escape(self.page_of[target] + fragment, quote=True)
        if not target.exists():
            self.broken.append(f"{page}: {url}")
            return url
        rel = pathlib.PurePath(os.path.relpath(target, self.out)).as_posix()
        return html.escape(urllib.parse.quote(rel) + fragment, quote=True)


def nav_html(pages: list[Page], current: Page | None) -> str:
    """The bar at the top of every page: home, each notebook by number, quizzes, guide."""
    items = ['<a class="course-home" href="index.html">Course home</a>']
    for page in pages:
        if page.kind != "notebook":
            continue
        here = ' aria-current="page"' if current is page else ""
        title = html.escape(page.title, quote=True)
        items.append(f'<a href="{page.file}" title="{title}"{here}>{page.number}</a>')
    items.append('<a href="index.html#quizzes">Quizzes</a>')
    if any(p.kind == "guide" for p in pages):
        items.append('<a href="index.html#instructors">Workshop guide</a>')
    return '<nav class="course-nav">' + " ".join(items) + "</nav>"


def prev_next_html(pages: list[Page], current: Page) -> str:
    same = [p for p in pages if p.kind == current.kind]
    k = same.index(current)
    parts = []
    if k > 0:
        prev = same[k - 1]
        parts.append(
            f'<a class="course-prev" href="{prev.file}">&larr; {html.escape(prev.title)}</a>'
        )
    if k + 1 < len(same):
        nxt = same[k + 1]
        parts.append(
            f'<a class="course-next" href="{nxt.file}">{html.escape(nxt.title)} &rarr;</a>'
        )
    return '<nav class="course-prevnext">' + "".join(parts) + "</nav>"


def page_html(title: str, nav: str, body: str) -> str:
    """A site page that is not a notebook (index, quiz, guide)."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="assets/site.css">
</head>
<body class="course-page">
{nav}
<main class="course-main">
{body}
</main>
</body>
</html>
"""


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def widget_text(model_id: str, state: dict) -> str | None:
    """A stored widget's last state as one line of text: a tqdm bar (an HBox of HTML, progress,
    HTML) reads as tqdm prints it, ``train fp32: 100%|##########| 20/20 [...]``; None for any
    other widget."""
    model = state.get(model_id, {})
    if model.get("model_name") != "HBoxModel":
        return None
    parts = []
    for child in model.get("state", {}).get("children", []):
        child = state.get(str(child).removeprefix("IPY_MODEL_"), {})
        name, values = child.get("model_name"), child.get("state", {})
        if name == "HTMLModel":
            parts.append(html.unescape(re.sub(r"<[^>]+>", "", str(values.get("value", "")))))
        elif name in ("FloatProgressModel", "IntProgressModel"):
            done = values.get("value") or 0
            total = values.get("max") or 0
            filled = round(10 * done / total) if total else 0
            parts.append("|" + "#" * filled + " " * (10 - filled) + "|")
        else:
            return None
    return "".join(parts).replace("\u2007", " ") if parts else None


def static_widgets(nb) -> None:
    """Widgets as the page shows them without a widget manager: their stored HTML where the
    course stored one (the quizzes), a tqdm bar's last state as text (instead of the 0% its
    text fallback froze at), else their text fallback. Drops the widget state."""
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            view = data.pop(WIDGET_VIEW)
            text = widget_text(view.get("model_id", ""), state)
            if text and "text/html" not in data:
                data["text/plain"] = text


def render_notebook(path: pathlib.Path, page: Page, pages: list[Page], exporter, repo_link: str):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    # No widget manager from a CDN: each widget shows what static_widgets leaves.
    static_widgets(nb)
    quiz_page = next(
        (p for p in pages if p.kind == "quiz" and p.source and p.source.stem == path.stem), None
    )
    resources = {
        "course": {
            "nav": nav_html(pages, page),
            "prevnext": prev_next_html(pages, page),
            "ipynb": repo_link,
            "ipynb_name": path.name,
            "quiz": quiz_page.file if quiz_page else "",
        },
        "metadata": {"name": page.title},
    }
    with warnings.catch_warnings():
        # IPython's lexer (magics, !shell) is not installed here: the notebooks have neither, and
        # pygments' Python 3 lexer highlights them the same.
        warnings.filterwarnings("ignore", message="IPython3? lexer unavailable")
        body, _ = exporter.from_notebook_node(nb, resources=resources)
    return body


def answer_html(question, md) -> str:
    """What a learner checks against: the right choice(s) or value, then the explanation."""
    if question.type in ("single", "multiple"):
        right = [c for c in question.choices if c.correct]
        items = "".join(f"<li>{html.escape(c.id)}) {md(c.text)}</li>" for c in right)
        answer = f'<ul class="course-answer-choices">{items}</ul>'
    elif question.type == "numeric":
        unit = f" {html.escape(question.unit)}" if question.unit else ""
        within = f" (within {question.tolerance:g})" if question.tolerance else ""
        answer = f"<p>{question.answer:g}{unit}{within}</p>"
    else:
        answer = f"<p>{'True' if question.answer else 'False'}</p>"
    return f"{answer}<p>{md(question.explanation)}</p>"


def quiz_body(quiz, bank, text, pages: list[Page]) -> str:
    md = text.markdown_to_html
    parts = [f"<h1>{html.escape(quiz.title)}</h1>"]
    notebook = next(
        (p for p in pages if p.kind == "notebook" and p.source and p.source.stem == quiz.id), None
    )
    if notebook:
        parts.append(
            f'<p class="course-quiz-from">The quiz of <a href="{notebook.file}">'
            f"{html.escape(notebook.title)}</a>. In JupyterLab the notebook asks it interactively "
            "and keeps your score; here, answer in your head, then open the answer.</p>"
        )
    else:
        parts.append(
            '<p class="course-quiz-from">Answer in your head, then open the answer. In JupyterLab, '
            f'<code>quiz.show("{html.escape(quiz.id)}")</code> asks it interactively.</p>'
        )
    if quiz.intro:
        parts.append(f"<p>{md(quiz.intro)}</p>")
    parts.append('<ol class="course-quiz">')
    for question in quiz.questions:
        parts.append(
            f'<li id="{html.escape(question.id, quote=True)}">'
            f"{text.question_html(question)}"
            f'<details class="course-hint"><summary>Hint</summary><p>{md(question.hint)}</p>'
            "</details>"
            f'<details class="course-answer"><summary>Answer</summary>'
            f"{answer_html(question, md)}</details></li>"
        )
    parts.append("</ol>")
    return "\n".join(parts)


def index_body(pages: list[Page], intro_html: str) -> str:
    parts = [intro_html, '<h2 id="notebooks">Notebooks, in course order</h2>']
    parts.append('<table class="course-toc"><thead><tr><th>#</th><th>Notebook</th>')
    parts.append("<th>Quiz</th></tr></thead><tbody>")
    quizzes = {p.source.stem: p for p in pages if p.kind == "quiz" and p.source}
    for p in (p for p in pages if p.kind == "notebook"):
        quiz = quizzes.get(p.source.stem) if p.source else None
        quiz_cell = f'<a href="{quiz.file}">quiz</a>' if quiz else ""
        parts.append(
            f'<tr><td>{p.number}</td><td><a href="{p.file}">{html.escape(p.title)}</a></td>'
            f"<td>{quiz_cell}</td></tr>"
        )
    parts.append("</tbody></table>")
    parts.append('<h2 id="quizzes">Quizzes</h2><ul>')
    for p in (p for p in pages if p.kind == "quiz"):
        parts.append(f'<li><a href="{p.file}">{html.escape(p.title)}</a></li>')
    parts.append("</ul>")
    guides = [p for p in pages if p.kind == "guide"]
    if guides:
        parts.append('<h2 id="instructors">For instructors: the workshop guide</h2><ul>')
        for p in guides:
            parts.append(f'<li><a href="{p.file}">{html.escape(p.title)}</a></li>')
        parts.append("</ul>")
    return "\n".join(parts)


def copy_mathjax(out: pathlib.Path) -> None:
    import jupyter_server_mathjax

    static = pathlib.Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(
        static, out / "assets" / "mathjax", ignore=shutil.ignore_patterns("localization")
    )


def collect_pages(repo: pathlib.Path, bank) -> list[Page]:
    pages: list[Page] = []
    for path in sorted((repo / "notebooks").glob("*.ipynb")):
        match = NOTEBOOK_RE.match(path.name)
        if match:
            pages.append(Page(f"{path.stem}.html", "", "notebook", match.group(1), path))
    quiz_dir = repo / "data" / "quizzes"
    numbered = sorted(p for p in quiz_dir.glob("*.json") if p.name != "schema.json")
    for path in sorted(numbered, key=lambda p: (not p.name[:2].isdigit(), p.name)):
        pages.append(Page(f"quiz-{path.stem}.html", "", "quiz", path.name[:2], path))
    guide_dir = repo / "instructors"
    guide_files = sorted(guide_dir.glob("*.md")) if guide_dir.is_dir() else []
    # README (how to run the day) first, then other named files (the plans), then per notebook.
    guide_files.sort(key=lambda p: (p.stem.upper() != "README", p.stem[:2].isdigit(), p.stem))
    for path in guide_files:
        pages.append(Page(f"guide-{path.stem}.html", "", "guide", "", path))
    return pages


def build(repo: pathlib.Path, out: pathlib.Path) -> list[str]:
    """Build the site into ``out`` (emptied first); return the broken links found."""
    import nbformat
    from nbconvert import HTMLExporter

    repo = repo.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    out = out.resolve()
    os.environ.setdefault("COURSE_QUIZ_DIR", str(repo / "data" / "quizzes"))
    bank, text = quiz_modules(repo)
    md = markdown_renderer()
    pages = collect_pages(repo, bank)
    quizzes = {}
    for page in pages:
        if page.kind == "notebook":
            page.title = notebook_title(nbformat.read(page.source, as_version=4)) or page.file
        elif page.kind == "quiz":
            quizzes[page.file] = bank.parse_bank(page.source)
            page.title = quizzes[page.file].title
        elif page.kind == "guide":
            first = page.source.read_text(encoding="utf-8").lstrip().splitlines()[:1]
            heading = first[0] if first and first[0].startswith("#") else page.source.stem
            page.title = plain_title(heading)

    page_of = {p.source: p.file for p in pages if p.kind in ("notebook", "guide")}
    site_files = {"index.html", *(p.file for p in pages)}
    fixer = LinkFixer(repo, out, page_of, site_files)

    exporter = HTMLExporter(
        template_name="course",
        extra_template_basedirs=[str(SITE_SRC / "templates")],
    )
    exporter.mathjax_url = f"assets/mathjax/MathJax.js?config={MATHJAX_CONFIG}"
    for page in pages:
        if page.kind != "notebook":
            continue
        ipynb = posixpath.join(*pathlib.PurePath(os.path.relpath(page.source, out)).parts)
        # The link to the .ipynb is already relative to OUT: marked so that the fixer, which
        # reads links relative to notebooks/, leaves it alone, then unmarked.
        marked = IPYNB_MARK + urllib.parse.quote(ipynb)
        body = render_notebook(page.source, page, pages, exporter, marked)
        body = fixer.fix(body, page.source.parent, page.file)
        body = body.replace(f'href="{IPYNB_MARK}', 'href="')
        (out / page.file).write_text(body, encoding="utf-8")

    for page in pages:
        nav = nav_html(pages, page)
        if page.kind == "quiz":
            body = quiz_body(quizzes[page.file], bank, text, pages)
        elif page.kind == "guide":
            body = md.render(page.source.read_text(encoding="utf-8"))
            body += prev_next_html(pages, page)
        else:
            continue
        body = fixer.fix(page_html(page.title, nav, body), page.source.parent, page.file)
        (out / page.file).write_text(body, encoding="utf-8")

    intro = md.render((SITE_SRC / "index.md").read_text(encoding="utf-8"))
    index = page_html(COURSE_TITLE, nav_html(pages, None), index_body(pages, intro))
    (out / "index.html").write_text(fixer.fix(index, SITE_SRC, "index.html"), encoding="utf-8")

    (out / "assets").mkdir(exist_ok=True)
    shutil.copy2(SITE_SRC / "site.css", out / "assets" / "site.css")
    copy_mathjax(out)
    return fixer.broken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=pathlib.Path, help="the folder to build into (emptied first)")
    parser.add_argument("--repo", type=pathlib.Path, default=REPO_ROOT)
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a page links to a missing file"
    )
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"OUT {args.out} is a file, not a folder")
    if args.out.resolve() in (args.repo.resolve(), *args.repo.resolve().parents):
        parser.error(f"OUT {args.out} would empty the repository: name a folder such as _site")
    start = time.perf_counter()
    broken = build(args.repo, args.out)
    pages = len(list(args.out.glob("*.html")))
    print(f"built {pages} pages into {args.out} in {time.perf_counter() - start:.0f} s")
    if broken:
        print("links to missing files:", *broken, sep="\n  ", file=sys.stderr)
        return 1 if args.strict else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
