"""Headless Chromium for the report tests and the docs screenshots (skips where absent).

A page is loaded from a copy with a probe script injected first in <head>: after
the load event it records how many images there are and how many failed to
decode, every resource the page fetched (performance resource timing), script
errors, and the ids of tables and images, and writes them into the DOM, which
``--dump-dom`` prints. Chromium's own NetLog of the load is returned as well.
"""

from __future__ import annotations

import html as html_module
import json
import re
import shutil
import subprocess
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
_PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(String(e.message || (e.target && e.target.tagName) || e.type));
}, true);
window.addEventListener("load", function () {
  var images = [].slice.call(document.images);
  var ids = function (nodes) { return [].slice.call(nodes).map(function (n) { return n.id; }); };
  var out = {
    images: images.length,
    broken: images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length,
    resources: performance.getEntriesByType("resource").map(function (r) { return r.name; }),
    errors: window.__errors,
    scripts: document.scripts.length,
    tables: document.querySelectorAll("table").length,
    table_ids: ids(document.querySelectorAll("table[id]")),
    image_ids: ids(document.querySelectorAll("img[id]")),
    headings: [].slice.call(document.querySelectorAll("h2")).map(function (h) {
      return h.textContent.trim(); })
  };
  var pre = document.createElement("pre");
  pre.id = "seglab-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""
# hosts Chromium itself may contact at start-up (not the page)
_BROWSER_HOSTS = re.compile(
    r"^https?://[^/]*\b(google\.com|googleapis\.com|gvt1\.com|gstatic\.com)/"
)


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def probe_page(html: Path, work: Path) -> tuple[dict, list[str]]:
    """(what the probe saw, URLs in Chromium's NetLog that the browser itself did not ask for)."""
    work.mkdir(parents=True, exist_ok=True)
    page = work / "probed.html"
    text = html.read_text(encoding="utf-8")
    page.write_text(text.replace("<head>", "<head>" + _PROBE, 1), encoding="utf-8")
    netlog = work / "netlog.json"
    result = subprocess.run(
        [
            chromium() or "chromium",
            *FLAGS,
            f"--user-data-dir={work / 'profile'}",
            f"--log-net-log={netlog}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r'<pre id="seglab-probe">(.*?)</pre>', result.stdout, re.S)
    if match is None:
        raise AssertionError(f"the page did not finish loading: {result.stderr[-2000:]}")
    probe = json.loads(html_module.unescape(match.group(1)))
    urls = re.findall(r'"url":"([^"]*)"', netlog.read_text(encoding="utf-8", errors="replace"))
    foreign = sorted({u for u in urls if not _BROWSER_HOSTS.match(u) and u != page.as_uri()})
    return probe, foreign
