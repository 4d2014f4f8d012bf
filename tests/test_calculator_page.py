"""Browser test of the "Will it fit?" calculator page (book/calculator.md) against lab_utils.

The page computes in JavaScript (book/_static/calculator/calculator.js); this test drives the built page
in headless Chromium, offline, through its URL parameters and its form, and compares every number it
shows with lab_utils.fitting.calculator computed here: the bytes the page carries in `data-bytes`
exactly, the text it displays within its rounding. It uses the `server` and `browser` fixtures of
tests/conftest.py and tests/test_site.py's `visit`, which fails a page on console errors and on any
request that leaves localhost.

Run with `make site && .venv/bin/python -m pytest -q -m browser tests/test_calculator_page.py`.
"""

import json
import random
import re
from dataclasses import asdict

import pytest
from test_calculator import random_config
from test_site import HTML, SHOTS, fail_with, visit

from lab_utils.fitting import calculator as calc
from lab_utils.fitting.calculator import Config, breakdown, cheapest_fix, stage_table, to_query

pytestmark = pytest.mark.browser
PAGE = "book/calculator.html"
N_RANDOM = 60

READ = """() => {
  const out = {};
  document.querySelectorAll('#wif-out [data-out]').forEach(td => {
    out[td.dataset.out] = [Number(td.dataset.bytes), td.textContent.trim()]; });
  const v = document.getElementById('wif-verdict'), fx = document.getElementById('wif-fix');
  return {out, fits: v ? v.dataset.fits : null, fix: fx && fx.dataset.fix ? fx.dataset.fix : null,
          error: document.getElementById('wif-error')?.textContent ?? null};
}"""


def load(page, url: str) -> None:
    """Open `url` in `page` and let it settle (MathJax's fonts included) before the next one."""
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    page.evaluate("() => window.MathJax?.startup?.promise?.then(() => true) ?? true")


def expected(cfg: Config) -> dict[str, float]:
    b = breakdown(cfg)
    out = {k: getattr(b, k) for k in ("params", "grads", "optimizer_states", "activations", "allowance",
                                      "total", "gpu")}
    out.update({f"stage{s}": v for s, v in stage_table(cfg).items()})
    if cfg.offload:
        out["host"] = b.host
    return out


def shown_gb(text: str) -> tuple[float, float]:
    """A displayed "12.3 GB" as (12.3, half of its last digit): the rounding it allows."""
    m = re.fullmatch(r"([0-9]+)(?:\.([0-9]+))? GB", text)
    assert m, f"not a GB value: {text!r}"
    decimals = len(m.group(2) or "")
    return float(m.group(0)[:-3]), 0.5 * 10**-decimals + 1e-9


def compare(cfg: Config, got: dict) -> list[str]:
    """Every difference between the page's outputs and lab_utils for `cfg`."""
    problems = []
    if got["error"]:
        return [f"the page refused {cfg}: {got['error']}"]
    want = expected(cfg)
    if set(got["out"]) != set(want):
        problems.append(f"outputs {sorted(got['out'])}, expected {sorted(want)}")
    for key, value in want.items():
        if key not in got["out"]:
            continue
        page_bytes, text = got["out"][key]
        if page_bytes != value:
            problems.append(f"{key}: page {page_bytes!r} bytes, lab_utils {value!r}")
        shown, tol = shown_gb(text)
        if abs(shown - value / calc.GB) > tol:
            problems.append(f"{key}: page shows {text!r}, lab_utils {value / calc.GB:.4f} GB")
    b = breakdown(cfg)
    if got["fits"] != str(b.fits).lower():
        problems.append(f"page says fits={got['fits']}, lab_utils {b.fits}")
    fix = cheapest_fix(cfg)
    page_fix = json.loads(got["fix"]) if got["fix"] and got["fix"] != "none" else None
    if (fix and asdict(fix.config)) != page_fix:
        problems.append(f"page's fix {page_fix}, lab_utils' {fix and asdict(fix.config)}")
    return [f"{to_query(cfg)}: {p}" for p in problems]


def test_page_renders_offline_without_errors(browser, server):
    page, report, problems = visit(browser, server + PAGE)
    try:
        got = page.evaluate(READ)
        if not report["h1"]:
            problems.append("no <h1> title")
        if got["fits"] is None:
            problems.append(f"the calculator did not render a verdict: {got}")
        problems += compare(Config(), got)
        fail_with(PAGE, problems)
    finally:
        page.close()


def test_random_configurations_match_lab_utils(browser, server):
    rng = random.Random(20260212)
    configs = [random_config(rng) for _ in range(N_RANDOM)]
    assert sum(not breakdown(c).fits for c in configs) >= 10, "the sample needs configurations that do not fit"
    page, _, problems = visit(browser, server + PAGE)
    try:
        for cfg in configs:
            load(page, server + PAGE + "?" + to_query(cfg))
            problems += compare(cfg, page.evaluate(READ))
        fail_with(f"{PAGE} on {len(configs)} random configurations", problems)
    finally:
        page.close()


def test_form_inputs_drive_the_page(browser, server):
    """Typing into the form gives what the URL gives (and lab_utils)."""
    rng = random.Random(7)
    page, _, problems = visit(browser, server + PAGE)
    try:
        for cfg in [random_config(rng) for _ in range(6)]:
            load(page, server + PAGE)
            page.fill("#wif-params", f"{cfg.params / 1e9!r}B")  # the page reads 7.5B as 7.5e9
            for name in ("layers", "hidden", "heads", "vocab", "seq", "micro_batch", "dp", "gpu_gb"):
                page.fill(f"#wif-{name}", str(getattr(cfg, name)))
            for name in ("precision", "optimizer", "checkpointing", "stage"):
                page.select_option(f"#wif-{name}", str(getattr(cfg, name)))
            page.set_checked("#wif-offload", cfg.offload)
            got = page.evaluate(READ)
            # "7.5B" is parsed as 7.5 * 1e9, which may differ from 7.5e9 in the last bit: compare with that
            typed = Config(**{**asdict(cfg), "params": float(repr(cfg.params / 1e9)) * 1e9})
            problems += compare(typed, got)
        fail_with(f"{PAGE} driven through its form", problems)
    finally:
        page.close()


def test_zero_figure_1_from_url_parameters(browser, server):
    """ZeRO Figure 1: Ψ = 7.5 B, N_d = 64: 120, 31.4, 16.6 and 1.9 GB of model states per device."""
    page, _, problems = visit(browser, server + PAGE + "?params=7.5e9&dp=64&precision=mixed&optimizer=adam")
    try:
        got = page.evaluate(READ)["out"]
        shown = [got[f"stage{s}"][1] for s in range(4)]
        if shown != ["120 GB", "31.4 GB", "16.6 GB", "1.9 GB"]:
            problems.append(f"stage table shows {shown}")
        fail_with("ZeRO Figure 1", problems)
    finally:
        page.close()


@pytest.mark.parametrize("query", [
    "preset=7b&mb=4&gpu=a100-80",
    "params=7.5e9&layers=32&hidden=4096&heads=32&dp=64&stage=1&gpu_gb=32",
    "preset=70b&gpu=t4&mb=2",
    "preset=1.3b&precision=fp32&mb=16&gpu=t4",
])
def test_suggested_fix_applied_fits(browser, server, query):
    page, _, problems = visit(browser, server + PAGE + "?" + query)
    try:
        before = page.evaluate(READ)
        assert before["fits"] == "false", f"{query} should not fit: {before}"
        text = page.inner_text("#wif-fix")
        if "Cheapest change that fits" not in text:
            problems.append(f"no fix proposed: {text!r}")
        page.click("#wif-apply")
        after = page.evaluate(READ)
        if after["fits"] != "true":
            problems.append(f"the proposed change, applied, does not fit: {after}")
        fixed = Config(**json.loads(before["fix"]))
        if not breakdown(fixed).fits:
            problems.append(f"lab_utils says the page's fix {fixed} does not fit")
        problems += compare(fixed, after)
        load(page, page.url)  # the address carries the applied configuration: reloading shows it again
        problems += [f"reloaded {page.url}: {p}" for p in compare(fixed, page.evaluate(READ))]
        fail_with(f"{PAGE}?{query}", problems)
    finally:
        page.close()


def test_narrow_screen_and_file_url(browser, server):
    """On a 375-px-wide screen nothing overflows; the page also works opened as a file."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page, _, problems = visit(browser, server + PAGE + "?preset=7b&mb=4&gpu=a100-80")
    try:
        page.set_viewport_size({"width": 375, "height": 812})
        page.wait_for_timeout(300)
        width = page.evaluate("document.scrollingElement.scrollWidth")
        right = page.evaluate("document.getElementById('will-it-fit').getBoundingClientRect().right")
        if width > 375 or right > 375:
            problems.append(f"overflows a 375-px screen: page {width} px wide, calculator ends at {right} px")
        page.screenshot(path=str(SHOTS / "calculator-375.png"), full_page=True)
    finally:
        page.close()
    page, _, more = visit(browser, (HTML / PAGE).resolve().as_uri() + "?preset=gpt2-124m&gpu=t4")
    try:
        got = page.evaluate(READ)
        if got["fits"] != "true":
            more.append(f"from file:// the page shows {got}")
    finally:
        page.close()
    fail_with(PAGE, problems + [f"file://: {p}" for p in more])


def test_links_into_the_calculator_open_valid_configurations(browser, server):
    """Every link in the site to the calculator with URL parameters (the chapters' pre-filled examples,
    the page's own) opens a configuration the page accepts."""
    links = set()
    for html in HTML.rglob("*.html"):
        for href in re.findall(r'href="([^"#]*calculator\.html\?[^"]*)"', html.read_text(encoding="utf8")):
            target = (html.parent / href.split("?")[0]).resolve()
            if target == (HTML / PAGE).resolve():
                links.add(f"{PAGE}?{href.split('?', 1)[1].replace('&amp;', '&')}")
    assert links, "no link to the calculator with URL parameters anywhere in the site"
    page, _, problems = visit(browser, server + PAGE)
    try:
        for link in sorted(links):
            load(page, server + link)
            got = page.evaluate(READ)
            if got["error"] or got["fits"] is None:
                problems.append(f"{link}: {got['error'] or 'no verdict'}")
        fail_with(f"{len(links)} link(s) to the calculator", problems)
    finally:
        page.close()
