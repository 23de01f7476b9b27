"""The course site (``make site``): built once per module into a temporary folder with
``.venv-site``'s Python (inside ``unshare -rn``, without a network, where the machine allows
it), then checked as files and, in a real browser, as a learner sees it.

Every notebook has a page that shows at least as many images as the notebook has stored PNG
outputs; every relative ``href``/``src`` points to a file that exists; nothing on any page is
loaded from the network (scripts, styles, images); every quiz question's answer sits inside a
``<details>`` fold; every workshop guide page exists. The browser test (``-m browser``) opens the
index and a notebook page from ``file://`` in Debian's Chromium at 1280x720, finds their headings
and a loaded image, the math typeset, and no request that leaves the machine.

Needs ``.venv-site`` (``make site-install``): skipped without it, except in CI (``CI=true``),
where that is a failure.
"""

from __future__ import annotations

import html.parser
import json
import os
import pathlib
import re
import subprocess
import urllib.parse

import nbformat
import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, REPO_ROOT, VIEWPORT

SITE_PYTHON = REPO_ROOT / ".venv-site" / "bin" / "python"
BUILD_S = 300
NOTEBOOK_RE = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the site must build in CI)")
    pytest.skip(reason)


def notebooks() -> list[pathlib.Path]:
    return sorted(p for p in (REPO_ROOT / "notebooks").glob("*.ipynb") if NOTEBOOK_RE.match(p.name))


def quiz_banks() -> list[pathlib.Path]:
    return sorted(
        p for p in (REPO_ROOT / "data" / "quizzes").glob("*.json") if p.name != "schema.json"
    )


def guides() -> list[pathlib.Path]:
    return sorted((REPO_ROOT / "instructors").glob("*.md"))


def no_network() -> list[str]:
    """``unshare -rn`` (a new user and network namespace: no interface but loopback) where this
    machine allows it, so that the build proves it needs no network; else nothing."""
    probe = ["unshare", "-rn", "true"]
    try:
        ok = subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return probe[:2] if ok else []


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> pathlib.Path:
    if not SITE_PYTHON.exists():
        skip_or_fail(f"{SITE_PYTHON} not found: run `make site-install` first")
    out = tmp_path_factory.mktemp("site") / "_site"
    result = subprocess.run(
        [*no_network(), str(SITE_PYTHON), str(REPO_ROOT / "scripts" / "build_site.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=BUILD_S,
        env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONWARNINGS="ignore"),
    )
    assert result.returncode == 0, f"make site failed:\n{result.stdout}\n{result.stderr}"
    return out


class PageParser(html.parser.HTMLParser):
    """Every URL a page refers to (with its tag), its headings, and its text, split into the
    text inside ``<details>`` and the text outside."""

    URL_ATTRS = {"a": "href", "link": "href", "script": "src", "img": "src", "iframe": "src"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str]] = []
        self.images: list[str] = []
        self.headings: list[str] = []
        self.inside: list[str] = []
        self.outside: list[str] = []
        self.styles: list[str] = []
        self._details = 0
        self._heading: list[str] | None = None
        self._style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = self.URL_ATTRS.get(tag)
        if name and attrs.get(name):
            self.urls.append((tag, attrs[name]))
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        if tag == "details":
            self._details += 1
        if re.fullmatch(r"h[1-3]", tag):
            self._heading = []
        if tag == "style":
            self._style = True

    def handle_endtag(self, tag):
        if tag == "details":
            self._details -= 1
        if re.fullmatch(r"h[1-3]", tag) and self._heading is not None:
            self.headings.append(" ".join("".join(self._heading).split()))
            self._heading = None
        if tag == "style":
            self._style = False

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)
        if self._style:
            self.styles.append(data)
        (self.inside if self._details else self.outside).append(data)


def parse(path: pathlib.Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def plain(text: str) -> str:
    """Markdown as the words a reader sees (no markup, single spaces)."""
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").render(text)
    words = re.sub(r"<[^>]+>", " ", rendered)
    import html as html_module

    return " ".join(html_module.unescape(words).split())


def squeeze(parts: list[str]) -> str:
    return " ".join(" ".join(parts).split())


def png_outputs(path: pathlib.Path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum(
        "image/png" in output.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def test_every_notebook_has_a_page_in_course_order(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    positions = []
    assert notebooks(), "no notebooks/NN_*.ipynb found"
    for path in notebooks():
        page = site / f"{path.stem}.html"
        assert page.is_file(), f"{path.name} has no page"
        title = parse(page).headings[0]
        assert title.startswith(path.name[:2]), f"{page.name}: first heading {title!r}"
        positions.append(index.find(f'href="{page.name}"'))
    assert -1 not in positions, "the index misses a notebook"
    assert positions == sorted(positions), "the index does not list the notebooks in order"


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_notebook_page_shows_its_figures_and_links_its_ipynb(site, path):
    parser = parse(site / f"{path.stem}.html")
    pngs = png_outputs(path)
    assert len(parser.images) >= pngs, f"{len(parser.images)} <img> for {pngs} stored PNG outputs"
    ipynb = [url for tag, url in parser.urls if tag == "a" and url.endswith(path.name)]
    assert ipynb, f"{path.stem}.html does not link to {path.name}"
    assert (site / urllib.parse.unquote(ipynb[0])).resolve() == path.resolve()


def test_progress_bars_show_their_last_state(site):
    """A tqdm bar's text fallback froze at 0% when the cell started; its stored widget state holds
    where it ended, and that is what the page shows."""
    frozen = re.compile(r"\b0%\|\s*\| 0/\d+")
    for path in notebooks():
        text = (site / f"{path.stem}.html").read_text(encoding="utf-8")
        assert not frozen.search(text), f"{path.stem}.html shows a progress bar frozen at 0%"


def site_pages(site: pathlib.Path) -> list[pathlib.Path]:
    return sorted(site.glob("*.html"))


def test_no_link_points_to_a_missing_file(site):
    missing = []
    for page in site_pages(site):
        for tag, url in parse(page).urls:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme or parts.netloc or not parts.path:
                continue
            if not (page.parent / urllib.parse.unquote(parts.path)).exists():
                missing.append(f"{page.name}: <{tag}> {url}")
    assert not missing, "links to missing files:\n" + "\n".join(missing)


def test_nothing_is_loaded_from_the_network(site):
    """Scripts, styles, frames and images are files of the site (or data: URLs): a learner's
    offline browser needs nothing else. Links a reader clicks (<a>) may leave the site."""
    remote = []
    for page in site_pages(site):
        parser = parse(page)
        for tag, url in parser.urls:
            if tag != "a" and urllib.parse.urlsplit(url).scheme not in ("", "data"):
                remote.append(f"{page.name}: <{tag}> {url}")
        for css in parser.styles:
            remote += [
                f"{page.name}: <style> {u}" for u in re.findall(r"url\(['\"]?https?:[^)]*", css)
            ]
            remote += [f"{page.name}: <style> {u}" for u in re.findall(r"@import[^;]*", css)]
    assert not remote, "loaded from the network:\n" + "\n".join(remote)


@pytest.mark.parametrize("bank", quiz_banks(), ids=lambda p: p.stem)
def test_quiz_page_folds_every_answer(site, bank):
    raw = json.loads(bank.read_text(encoding="utf-8"))
    page = site / f"quiz-{raw['id']}.html"
    assert page.is_file(), f"{bank.name} has no page"
    text = page.read_text(encoding="utf-8")
    folds = text.count('<details class="course-answer">')
    assert folds == len(raw["questions"]), (
        f"{folds} answer folds, {len(raw['questions'])} questions"
    )
    parser = parse(page)
    inside, outside = squeeze(parser.inside), squeeze(parser.outside)
    for question in raw["questions"]:
        assert plain(question["prompt"]) in outside, f"{question['id']}: prompt not shown"
        explanation = plain(question["explanation"])
        assert explanation in inside, f"{question['id']}: explanation not in a fold"
        assert explanation not in outside, f"{question['id']}: explanation shown unfolded"


def test_every_guide_page_is_built_and_listed(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    for path in guides():
        page = site / f"guide-{path.stem}.html"
        assert page.is_file(), f"{path} has no page"
        assert f'href="{page.name}"' in index, f"the index does not link {page.name}"


def browser_notebook() -> pathlib.Path:
    """A notebook with stored figures, math if one has both."""
    with_png = [p for p in notebooks() if png_outputs(p)]
    if not with_png:
        pytest.skip("no notebook has a stored figure")
    with_math = [p for p in with_png if "$" in p.read_text(encoding="utf-8")]
    return (with_math or with_png)[0]


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_site_in_a_real_browser(site, tmp_path):
    """Index and a notebook page from file:// in Chromium at 1280x720: headings, a loaded image,
    typeset math, and no request that leaves the machine."""
    if not CHROMIUM.exists():
        skip_or_fail(f"{CHROMIUM} not found: install Debian's Chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    notebook = browser_notebook()
    leaving: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.on(
                "request",
                lambda r: (
                    None
                    if r.url.startswith(("file:", "data:", "about:"))
                    else leaving.append(r.url)
                ),
            )
            page.goto((site / "index.html").as_uri(), wait_until="load")
            assert "Mixed precision" in page.locator("h1").first.inner_text()
            assert page.locator("h2").count() >= 2
            links = page.locator(f'a[href="{notebook.stem}.html"]')
            assert links.count() >= 1
            links.last.click()
            page.wait_for_load_state("load")
            assert page.url.endswith(f"{notebook.stem}.html")
            assert page.locator("h1").first.inner_text().startswith(notebook.name[:2])
            assert page.locator("h2").count() >= 2
            image = page.locator(".jp-OutputArea-output img").first
            image.scroll_into_view_if_needed()
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
            )
            if "$" in notebook.read_text(encoding="utf-8"):
                page.wait_for_selector(
                    ".MathJax, .MathJax_Display", state="attached", timeout=20_000
                )
            if os.environ.get("COURSE_SITE_SCREENSHOT"):
                page.screenshot(path=os.environ["COURSE_SITE_SCREENSHOT"])
        finally:
            browser.close()
    assert not leaving, f"the site asked the network for: {leaving}"
