import functools
import http.server
import sys
import threading
from pathlib import Path

import pytest

# worker modules for lab_utils.dist tests are imported by name in spawned processes
sys.path.insert(0, str(Path(__file__).parent))

# ---------------------------------------------------------------- browser-test fixtures
# Shared by tests/test_site.py and tests/test_calculator_page.py: one server and one Chromium per session
# (Playwright's sync API cannot run two instances in one process). The constants live in test_site.py.


@pytest.fixture(scope="session")
def site() -> Path:
    from test_site import HTML

    if not (HTML / "index.html").is_file() or not (HTML / "searchindex.js").is_file():
        pytest.fail(f"no built site in {HTML}: run `make site` first", pytrace=False)
    return HTML


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="session")
def server(site):
    """`_build/html` on a free localhost port, served from a thread."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser(server, tmp_path_factory):
    """A headless Chromium context with a fresh profile directory."""
    from test_site import CHROMIUM, CHROMIUM_FLAGS, TIMEOUT_MS

    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: run `make browser-deps` (installs Debian's chromium)", pytrace=False
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
            service_workers="block",
        )
        context.set_default_timeout(TIMEOUT_MS)
        yield context
        context.close()
