"""Browser test of the rendered site: every page the build produced, in headless Chromium, offline.

Serves `_build/html` on a free localhost port and loads each page in Debian's Chromium through
Playwright (never `playwright install`: it downloads a browser, and this machine has no internet).
A page fails on any console error or uncaught JavaScript error, any request that fails, returns an
HTTP error or tries to leave localhost (the site must work offline: MathJax, fonts, ... are served
from `_static/`), any broken image, math that MathJax did not render, a missing title (h1) or a link
to a file the build did not write. A chapter (a notebook page) must also show executed outputs, its
run times, what it teaches and a "run on Colab" button, and the search page must find it by a word of
its title. It must show every figure its execution drew: as many images in its cell outputs as the
executed notebook the build used (the jupyter-cache of the site's scale profile) has image/png outputs,
and at least one when its code plots (figures lost to MPLBACKEND=agg fail here). Pages come from the build's own `searchindex.js`, so new chapters are covered as soon as
they are in `_toc.yml`. Screenshots of the landing page and of one chapter go to `_build/screenshots/`.

Run with `make site && make site-test`.
"""

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("LAB_SITE_HTML", ROOT / "_build" / "html"))  # override: test another build
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
# The flags issue 4 asks for; Playwright adds a fresh --user-data-dir through launch_persistent_context.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000
# Which scale profile built _build/html (written by `make site` / `make book`), and its jupyter-cache.
SCALE_MARKER = ROOT / "_build" / "config" / "html_scale"
CACHE_ROOT = ROOT / "_build" / ".jupyter_cache"
# Code that draws a figure: matplotlib calls and the book's plot helpers (lab_utils.plot).
PLOTTING = re.compile(r"\bplt\.|\.plot\(|\bmemory_bars\(|\bgantt\(|\.imshow\(|\.hist\(|\bsubplots\(")
# What myst-nb renders instead of the PNG when an output carries it too (its HTML render priority).
ABOVE_PNG = ("application/vnd.jupyter.widget-view+json", "application/javascript", "text/html", "image/svg+xml")
HIDDEN_OUTPUT_TAGS = {"remove-output", "remove_output", "remove-cell", "remove_cell"}
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
STOPWORDS = {"about", "their", "there", "these", "which", "while", "where", "without", "model", "models"}

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Page:
    docname: str  # e.g. "book/single_gpu/fitting_large_models"
    source: str  # e.g. "book/single_gpu/fitting_large_models.ipynb"
    title: str

    @property
    def path(self) -> str:
        return self.docname + ".html"

    @property
    def is_chapter(self) -> bool:
        return self.source.endswith(".ipynb")


def read_search_index(html: Path = HTML) -> dict:
    """The build's `searchindex.js` (`Search.setIndex({...})`) as a dict."""
    text = (html / "searchindex.js").read_text(encoding="utf8").strip()
    prefix = "Search.setIndex("
    if not (text.startswith(prefix) and text.endswith(")")):
        raise ValueError(f"{html / 'searchindex.js'} is not a Sphinx search index: run `make site` again")
    return json.loads(text[len(prefix) : -1])


def discover_pages(html: Path = HTML) -> list[Page]:
    """Every document the build wrote, plus the index and search pages Sphinx adds."""
    if not (html / "searchindex.js").is_file():
        return []
    index = read_search_index(html)
    pages = [Page(d, f, t) for d, f, t in zip(index["docnames"], index["filenames"], index["titles"])]
    pages += [Page(name, "", name) for name in ("genindex", "search") if (html / f"{name}.html").is_file()]
    return pages


def book_config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf8"))


def colab_link(page: Page) -> str:
    """The Colab URL sphinx-book-theme builds from the one repository URL in `_config.yml`."""
    cfg = book_config()
    repo = cfg["repository"]
    owner_repo = urlsplit(repo["url"]).path.strip("/")
    prefix = (repo.get("path_to_book") or "").strip("/")
    source = f"{prefix}/{page.source}" if prefix else page.source
    colab = cfg["launch_buttons"]["colab_url"].rstrip("/")
    return f"{colab}/github/{owner_repo}/blob/{repo.get('branch', 'main')}/{source}"


def keyword(page: Page) -> str:
    """A word of the chapter's title to search for: its longest word that is not too common."""
    words = [w for w in re.findall(r"[A-Za-z]{5,}", page.title) if w.lower() not in STOPWORDS]
    if not words:
        raise ValueError(f"{page.docname}: title {page.title!r} has no word of 5+ letters to search for")
    return max(words, key=len)


PAGES = discover_pages()
CHAPTERS = [p for p in PAGES if p.is_chapter]
# Without a build, one placeholder per test so it fails on the `site` fixture instead of being skipped.
_NO_SITE = [Page("no-built-site", "no-built-site.ipynb", "no built site")]


def ids(pages: list[Page]) -> list[str]:
    return [p.docname for p in pages]


# ---------------------------------------------------------------- fixtures


# `site`, `server` and `browser` are in tests/conftest.py: tests/test_calculator_page.py shares them
# (two Playwright instances cannot run in one process).


# ---------------------------------------------------------------- loading a page

DOM_REPORT = """async () => {
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener('load', r); i.addEventListener('error', r); setTimeout(r, 10000); })));
  const main = document.querySelector('main') || document.body;
  const text = el => (el.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 100);
  const math = [...document.querySelectorAll('.math')];
  return {
    url: location.href,
    h1: [...document.querySelectorAll('h1')].filter(h => h.getClientRects().length > 0).map(text).filter(t => t),
    brokenImages: imgs.filter(i => i.naturalWidth === 0).map(i => i.getAttribute('src') || i.outerHTML.slice(0, 100)),
    math: math.length,
    unrenderedMath: math.filter(m => !m.querySelector('mjx-container')).map(text),
    mathErrors: [...document.querySelectorAll('mjx-merror')].map(m => m.getAttribute('data-mjx-error') || text(m)),
    outputs: main.querySelectorAll('.cell_output').length,
    figures: main.querySelectorAll('.cell_output img').length,
    errorOutputs: [...main.querySelectorAll('.cell_output .output.traceback, .cell_output .output.error')].map(text),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    text: main.innerText,
  };
}"""


# searchtools.js writes "Search finished, ..." or "... did not match ..." when it is done.
SEARCH_DONE = "() => /finished|did not match/i.test(document.querySelector('#search-results .search-summary')?.textContent || '')"


def visit(browser, url: str) -> tuple[object, dict, list[str]]:
    """Open `url`, wait until it has settled (MathJax typeset included); return page, DOM report, problems."""
    problems: list[str] = []
    blocked: set[str] = set()
    reported: set[str] = set()  # URLs whose failure is already in `problems`
    page = browser.new_page()

    def route(r):
        u = urlsplit(r.request.url)
        if u.scheme in ("http", "https") and u.hostname not in LOCAL_HOSTS:
            blocked.add(r.request.url)
            reported.add(r.request.url)
            problems.append(f"tries to reach the internet (the site must work offline): {r.request.url}")
            r.abort("internetdisconnected")
        else:
            r.continue_()

    def console(msg):
        loc = msg.location or {}
        if msg.type != "error" or (
            msg.text.startswith("Failed to load resource") and loc.get("url") in reported
        ):
            return  # the failed load itself is reported by `failed` / `response` / `route`
        problems.append(f"console error: {msg.text} (at {loc.get('url', '?')}:{loc.get('lineNumber', '?')})")

    def failed(req):
        if req.url not in blocked:
            reported.add(req.url)
            problems.append(f"request failed ({req.failure}): {req.url}")

    def response(resp):
        if resp.status >= 400:
            reported.add(resp.url)
            problems.append(f"HTTP {resp.status} for {resp.url}")

    page.route("**/*", route)
    page.on("console", console)
    page.on("pageerror", lambda err: problems.append(f"uncaught JavaScript error: {err}"))
    page.on("requestfailed", failed)
    page.on("response", response)
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    # MathJax (when the page loads it) typesets after load; wait for its first pass to finish.
    page.evaluate("() => window.MathJax?.startup?.promise?.then(() => true) ?? true")
    report = page.evaluate(DOM_REPORT)
    return page, report, problems


_REPORTS: dict[str, tuple[dict, list[str]]] = {}


def report_of(browser, url: str) -> tuple[dict, list[str]]:
    """`visit`'s DOM report and problems, one visit per URL for the whole session: the page test and the
    chapter test read the same report (a chapter page is the slowest thing to load and typeset)."""
    if url not in _REPORTS:
        page, report, problems = visit(browser, url)
        page.close()
        _REPORTS[url] = report, problems
    report, problems = _REPORTS[url]
    return report, list(problems)


def local_file(base: str, href: str) -> Path | None:
    """The file under `_build/html` a same-site link points to (None for external links)."""
    if not href.startswith(base):
        return None
    path = unquote(urlsplit(href).path).lstrip("/")
    target = HTML / path
    return target / "index.html" if path == "" or href.split("#")[0].endswith("/") else target


def fail_with(page_name: str, problems: list[str]):
    if problems:
        listing = "\n  - ".join(dict.fromkeys(problems))  # de-duplicated, in order
        pytest.fail(f"{page_name}: {len(problems)} problem(s) in the browser:\n  - {listing}", pytrace=False)


def site_scale() -> str:
    """The scale profile `_build/html` was built at (`make site`: ci; `make book`: the detected one)."""
    if SCALE_MARKER.is_file():
        return SCALE_MARKER.read_text(encoding="utf8").strip()
    if os.environ.get("LAB_SCALE"):
        return os.environ["LAB_SCALE"].strip().lower()
    pytest.fail(f"{SCALE_MARKER} is missing: build the site with `make site` or `make book`", pytrace=False)


def executed_notebook(page: Page) -> nbformat.NotebookNode:
    """The execution of this chapter the site build used: its match in the scale's jupyter-cache."""
    from jupyter_cache import get_cache

    scale = site_scale()
    nb = nbformat.read(ROOT / page.source, as_version=4)
    cache_dir = CACHE_ROOT / scale
    if not (cache_dir / "global.db").is_file():
        pytest.fail(f"no jupyter-cache in {cache_dir} for the {scale}-scale site: run `make site`", pytrace=False)
    try:
        _, executed = get_cache(str(cache_dir)).merge_match_into_notebook(nb)
    except KeyError:
        pytest.fail(
            f"{page.source} has no execution in {cache_dir}: its code changed after the site was "
            "built; run `make site` (or `make book`) again",
            pytrace=False,
        )
    return executed


def count_figures(nb: nbformat.NotebookNode) -> tuple[int, int]:
    """(PNG figures the page should show, code cells whose code plots)."""
    figures = plotting = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        plotting += bool(PLOTTING.search(cell.source))
        if HIDDEN_OUTPUT_TAGS & set(cell.metadata.get("tags", [])):
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data and not any(m in data for m in ABOVE_PNG):
                figures += 1
    return figures, plotting


# ---------------------------------------------------------------- tests


def test_site_is_built_from_the_toc(site):
    """Every file in `_toc.yml` became a page (a stale or partial build fails here, not later)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf8"))
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk({k: v for k, v in toc.items() if k != "root"})
    built = {p.docname for p in PAGES}
    missing = [f for f in files if re.sub(r"\.(md|ipynb)$", "", f) not in built]
    assert not missing, f"in _toc.yml but not in {HTML}: {missing}; run `make site` again"
    assert CHAPTERS, "the site has no chapter (notebook) pages"


@pytest.mark.parametrize("page", PAGES or _NO_SITE, ids=ids(PAGES or _NO_SITE))
def test_page_loads_cleanly(page: Page, browser, server):
    report, problems = report_of(browser, server + quote(page.path))
    if not report["h1"]:
        problems.append("no title: the page has no <h1> (does its first markdown cell start with `# `?)")
    for src in report["brokenImages"]:
        problems.append(f"broken image (naturalWidth == 0): {src}")
    unrendered = report["unrenderedMath"]
    if unrendered:
        problems.append(
            f"{len(unrendered)} of {report['math']} formulas not rendered by MathJax (is "
            f"_static/mathjax/tex-chtml.js loaded?), e.g. {unrendered[:3]}"
        )
    for err in report["mathErrors"]:
        problems.append(f"TeX error in a formula: {err}")
    for href in sorted(set(report["links"])):
        target = local_file(server, href)
        if target is not None and not target.exists():
            problems.append(f"link to a file the build did not write: {href}")
    fail_with(page.path, problems)


@pytest.mark.parametrize("page", CHAPTERS or _NO_SITE, ids=ids(CHAPTERS or _NO_SITE))
def test_chapter_shows_outputs_figures_run_time_and_colab_button(page: Page, browser, server):
    report, problems = report_of(browser, server + quote(page.path))
    if report["outputs"] == 0:
        problems.append(
            "no executed output (.cell_output): the notebook was not executed or its outputs were "
            "removed; check `execute:` in _config.yml and the `make site` log"
        )
    for err in report["errorOutputs"]:
        problems.append(f"a cell's output is an error: {err}")
    expected, plotting = count_figures(executed_notebook(page))
    if plotting and expected == 0:
        problems.append(
            f"{plotting} code cell(s) plot, but the execution the site used holds no figure "
            "(image/png): was it run with MPLBACKEND=agg? Kernels need the inline backend"
        )
    if report["figures"] != expected:
        problems.append(
            f"shows {report['figures']} figure(s) in its cell outputs, but its execution "
            f"({site_scale()} scale) drew {expected}"
        )
    text = report["text"].lower()
    if "what you will learn" not in text:
        problems.append(
            "does not say what it teaches (no 'What you will learn' in the first markdown cell)"
        )
    if "run time" not in text:
        problems.append(
            "does not give its run time (no 'Run time: about N min ...' in the first markdown cell)"
        )
    expected = colab_link(page)
    if expected not in report["links"]:
        colab = [h for h in report["links"] if "colab" in h]
        problems.append(
            f"no 'run on Colab' launch button linking to {expected} (Colab links found: {colab})"
        )
    fail_with(page.path, problems)


@pytest.mark.parametrize("page", CHAPTERS or _NO_SITE, ids=ids(CHAPTERS or _NO_SITE))
def test_search_finds_chapter(page: Page, browser, server):
    word = keyword(page)
    p, _, problems = visit(browser, server + "search.html?q=" + quote(word))
    try:
        p.wait_for_function(SEARCH_DONE)
        hits = p.eval_on_selector_all("#search-results ul.search li a", "as => as.map(a => a.href)")
        if not any(urlsplit(h).path.lstrip("/") == page.path for h in hits):
            problems.append(
                f"searching for {word!r} (a word of the title {page.title!r}) found {len(hits)} page(s), "
                f"not {page.path}: {hits[:5]}"
            )
        fail_with(f"search.html?q={word}", problems)
    finally:
        p.close()


def test_search_box_on_landing_page(browser, server):
    """The search box in the page header submits to the search page, which lists results."""
    if not CHAPTERS:
        pytest.fail("the site has no chapter (notebook) pages to search for", pytrace=False)
    word = keyword(CHAPTERS[0])
    p, _, problems = visit(browser, server + "index.html")
    try:
        p.locator("button.search-button__button:visible").first.click()
        box = p.locator("input[name='q']:visible").first
        box.fill(word)
        with p.expect_navigation():
            box.press("Enter")
        if not urlsplit(p.url).path.endswith("/search.html"):
            problems.append(f"submitting the search box went to {p.url}, not search.html")
        else:
            p.wait_for_function(SEARCH_DONE)
            hits = p.locator("#search-results ul.search li").count()
            if hits == 0:
                problems.append(f"searching for {word!r} from the search box found nothing")
        fail_with("search box on the landing page", problems)
    finally:
        p.close()


def test_screenshots(browser, server):
    """Screenshots of the landing page and the first chapter for a human to look at."""
    if not CHAPTERS:
        pytest.fail("the site has no chapter (notebook) pages", pytrace=False)
    SHOTS.mkdir(parents=True, exist_ok=True)
    chapter = CHAPTERS[0]
    shots = [
        ("index.html", "landing.png", False),
        (chapter.path, "chapter.png", False),
        (chapter.path, "chapter-full.png", True),
    ]
    for path, name, full in shots:
        p, report, problems = visit(browser, server + quote(path))
        try:
            p.screenshot(path=str(SHOTS / name), full_page=full)
            fail_with(path, problems)
        finally:
            p.close()
        assert (SHOTS / name).stat().st_size > 10_000, f"{SHOTS / name} is suspiciously small (blank page?)"
