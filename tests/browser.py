"""Headless Chromium for the report.html tests and the docs screenshot (no Python dependency: the browser only).

:func:`find_chromium` locates the browser (``$CLIPGEO_CHROMIUM``, else ``chromium``, ``chromium-browser``,
``google-chrome`` on PATH); :func:`check_page` loads a page with a probe script injected into a copy of it and
returns what the browser saw: every image's ``naturalWidth``, the page text, script errors, and the console
lines Chromium logged for the *original* page (a Content-Security-Policy violation or a failed load is one);
:func:`screenshot` saves a PNG of a page.

``python -m tests.browser PAGE.html OUT.png [WIDTH HEIGHT]`` takes a screenshot from the command line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

RESULT_ID = "clipgeo-browser-check"

#: installed in a copy of the page, first thing in <head>: records script errors, then writes its findings
PROBE = """<script>
window.__clipgeoErrors = [];
window.addEventListener("error", function (e) { window.__clipgeoErrors.push(String(e.message || e.type)); }, true);
(function () { var err = console.error; console.error = function () {
  window.__clipgeoErrors.push(Array.prototype.join.call(arguments, " ")); return err.apply(console, arguments); }; })();
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight}; });
  var resources = performance.getEntriesByType("resource").map(function (r) { return r.name; });
  var out = document.createElement("pre");
  out.id = "RESULT_ID";
  out.textContent = JSON.stringify({images: images, errors: window.__clipgeoErrors, resources: resources,
                                    text: document.body.innerText});
  document.body.appendChild(out);
});
</script>""".replace("RESULT_ID", RESULT_ID)


def find_chromium() -> str | None:
    """The headless-capable Chromium/Chrome executable, or None."""
    env = os.environ.get("CLIPGEO_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="clipgeo-chromium-") as profile:
        cmd = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--metrics-recording-only", "--mute-audio",
            f"--user-data-dir={profile}", "--hide-scrollbars", *args,
        ]  # fmt: skip
        env = {**os.environ, "HOME": profile}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def console_lines(stderr: str) -> list[str]:
    """The page's console messages from Chromium's ``--enable-logging=stderr`` output."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@dataclass
class PageCheck:
    """What the browser saw of a page."""

    images: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    text: str = ""
    console: list[str] = field(default_factory=list)

    @property
    def broken_images(self) -> list[dict]:
        return [img for img in self.images if not img.get("complete") or not img.get("naturalWidth")]


def probe_copy(html: str) -> str:
    """The page with the probe script first in <head>, its policy letting inline script run (nothing else)."""
    html = re.sub(
        r'(<meta http-equiv="Content-Security-Policy" content=")([^"]*)(")',
        lambda m: m.group(1) + m.group(2) + "; script-src 'unsafe-inline'" + m.group(3),
        html,
        count=1,
    )
    head = re.search(r"<head[^>]*>", html)
    assert head is not None, "the page has no <head>"
    return html[: head.end()] + PROBE + html[head.end() :]


def check_page(page: str | os.PathLike, *, browser: str | None = None, timeout: float = 120) -> PageCheck:
    """Load ``page`` headless: the probe copy for images/text/errors, the page itself for console messages."""
    browser = browser or find_chromium()
    if browser is None:
        raise RuntimeError("no Chromium found (install the chromium package, or set CLIPGEO_CHROMIUM)")
    page = Path(page).resolve()
    common = ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom"]
    original = _run(browser, [*common, page.as_uri()], timeout)
    with tempfile.TemporaryDirectory(prefix="clipgeo-probe-") as tmp:
        copy = Path(tmp) / page.name
        copy.write_text(probe_copy(page.read_text(encoding="utf-8")), encoding="utf-8")
        probed = _run(browser, [*common, copy.as_uri()], timeout)
    found = re.search(rf'<pre id="{RESULT_ID}">(.*?)</pre>', probed.stdout, re.DOTALL)
    if found is None:
        raise RuntimeError(f"the probe wrote nothing (exit {probed.returncode}): {probed.stderr[-2000:]}")
    import html as html_lib

    result = json.loads(html_lib.unescape(found.group(1)))
    return PageCheck(
        images=result["images"],
        errors=result["errors"],
        resources=result["resources"],
        text=result["text"],
        console=console_lines(original.stderr),
    )


def screenshot(page: str | os.PathLike, out: str | os.PathLike, *, width: int = 1280, height: int = 2400,
               browser: str | None = None, timeout: float = 120) -> Path:  # fmt: skip
    """Save a PNG of the top ``width`` x ``height`` pixels of ``page``."""
    browser = browser or find_chromium()
    if browser is None:
        raise RuntimeError("no Chromium found (install the chromium package, or set CLIPGEO_CHROMIUM)")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = _run(
        browser,
        [f"--screenshot={out}", f"--window-size={width},{height}", "--virtual-time-budget=10000", Path(page).resolve().as_uri()],
        timeout,
    )
    if not out.is_file():
        raise RuntimeError(f"no screenshot written (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return out


if __name__ == "__main__":  # pragma: no cover - a tool
    args = sys.argv[1:]
    if len(args) not in (2, 4):
        sys.exit("usage: python -m tests.browser PAGE.html OUT.png [WIDTH HEIGHT]")
    size = {"width": int(args[2]), "height": int(args[3])} if len(args) == 4 else {}
    print(screenshot(args[0], args[1], **size))
