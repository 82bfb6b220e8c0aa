"""Check the built book as a reader meets it: its links, then its pages in a browser.

    python tools/check_book.py [--build] [--pages P ...] [--out DIR] [--no-screenshots]

1. ``--build``: build the book first, strictly (warnings are errors) as CI does, and
   every page (``--all``), so that a change to book/_static/ alone shows too.
2. Link check over ``_build/html/**/*.html``: every local ``href``/``src`` must name
   a file that exists, and every ``#anchor`` an ``id`` on the page it points to.
   External links (http, https, mailto ...) are not followed.
3. Screenshots of chosen pages with headless Chromium (Debian: ``apt-get install
   chromium``), 1280 px wide, the whole page in tiles of ``--tile-height`` px
   (``OUT/<page>-01.png``, ``-02.png`` ...), after MathJax has typeset. Each page is
   also inspected in the browser for what a reader would see broken: math left as
   raw TeX or in error, tables, equations, code or outputs wider than the text
   column (clipped or scrolled), blockquotes, images that did not load. The
   findings are printed and written to ``OUT/report.json``.

Pages are paths under ``_build/html`` or a unique prefix of a page's file name:
``04`` is ``notebooks/04_dpr.html``, ``setup`` is ``book/setup.html``.

Exit status: 0 when the links are sound, 1 when some are broken, 2 when the build
fails, 3 when screenshots were asked for and Chromium could not take them. The
browser findings are reported, not failed on: deciding what to fix is a reader's call.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PAGES = ["book/intro.html", "book/setup.html",
                 "notebooks/00_data_and_evaluation.html", "notebooks/01_bm25.html",
                 "notebooks/04_dpr.html", "notebooks/06_ltre.html"]
WIDTH = 1280


# ----------------------------------------------------------------------------- build

def build_book(root: Path = ROOT) -> int:
    """The strict build CI runs, of every page; returns its exit status.

    ``--all``: Sphinx skips writing (static files included) when no page changed,
    so an edit of book/_static/ alone would not show otherwise.
    """
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(root), "--all",
           "--warningiserror", "--nitpick", "--keep-going"]
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=root).returncode


# ------------------------------------------------------------------------ link check

LINK_ATTRS = {"a": "href", "area": "href", "link": "href", "img": "src",
              "script": "src", "iframe": "src", "source": "src", "video": "src",
              "audio": "src", "embed": "src"}


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("id", "name") if tag == "a" else ("id",):
            if values.get(name):
                self.ids.add(values[name])
        target = values.get(LINK_ATTRS.get(tag, ""))
        if target:
            self.links.append(target.strip())


def _parse(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def _is_external(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme) or url.startswith("//")


def check_links(html_dir: Path) -> list[str]:
    """Broken local links of every page under ``html_dir``, as readable lines.

    A line names the page, then the link: ``book/setup.html: missing file
    ../_static/x.js`` or ``book/setup.html: missing anchor #id (in book/intro.html)``.
    """
    html_dir = Path(html_dir)
    # Pages, not the theme's Jinja templates that Sphinx copies into _static/.
    pages = sorted(p for p in html_dir.rglob("*.html")
                   if p.relative_to(html_dir).parts[0] != "_static")
    parsed = {page.resolve(): _parse(page) for page in pages}
    problems: list[str] = []
    for page in pages:
        name = page.relative_to(html_dir).as_posix()
        for url in parsed[page.resolve()].links:
            if _is_external(url) or url.startswith(("javascript:", "data:")):
                continue
            parts = urlsplit(url)
            target = page.resolve()
            if parts.path:
                target = (page.parent / unquote(parts.path)).resolve()
                if parts.path.endswith("/") or target.is_dir():
                    target = target / "index.html"
                if not target.exists():
                    problems.append(f"{name}: missing file {url}")
                    continue
            anchor = unquote(parts.fragment)
            if not anchor or target.suffix != ".html":
                continue
            if target not in parsed:
                parsed[target] = _parse(target)
            if anchor not in parsed[target].ids:
                where = "" if target == page.resolve() else (
                    f" (in {os.path.relpath(target, html_dir)})")
                problems.append(f"{name}: missing anchor #{anchor}{where}")
    return problems


# -------------------------------------------------- a minimal DevTools protocol client

class DevTools:
    """Just enough of a WebSocket client (RFC 6455) to drive one Chromium page."""

    def __init__(self, ws_url: str, timeout: float = 60) -> None:
        url = urlsplit(ws_url)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET {url.path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            data += chunk
        head, self.buffer = data.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.decode(errors="replace"))
        self.last_id = 0

    def close(self) -> None:
        self.sock.close()

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _send(self, payload: bytes, opcode: int = 0x1) -> None:
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _message(self) -> dict:
        parts = []
        while True:
            first, second = self._read(2)
            opcode, n = first & 0x0F, second & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the connection")
            if opcode == 0x9:
                self._send(payload, opcode=0xA)
                continue
            if opcode in (0x0, 0x1, 0x2):
                parts.append(payload)
                if first & 0x80:
                    return json.loads(b"".join(parts))

    def call(self, method: str, **params) -> dict:
        self.last_id += 1
        self._send(json.dumps({"id": self.last_id, "method": method,
                               "params": params}).encode())
        while True:
            message = self._message()
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str, await_promise: bool = False):
        result = self.call("Runtime.evaluate", expression=expression,
                           returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")


# What a reader would see broken, measured in the page (returns JSON).
INSPECT_JS = r"""
(() => {
  const article = document.querySelector("article.bd-article") ||
                  document.querySelector("main") || document.body;
  const column = article.getBoundingClientRect();
  const snippet = (el) => (el.innerText || el.textContent || "")
      .replace(/\s+/g, " ").trim().slice(0, 90);
  const out = {column_width: Math.round(column.width),
               page_height: document.documentElement.scrollHeight,
               math_typeset: document.querySelectorAll("mjx-container").length,
               raw_math: [], math_errors: [], wide: [], blockquotes: [],
               broken_images: []};
  // Math that MathJax was meant to typeset but did not, and TeX errors.
  for (const el of article.querySelectorAll(".math")) {
    if (!el.querySelector("mjx-container")) out.raw_math.push(snippet(el));
  }
  for (const el of article.querySelectorAll("mjx-merror, [data-mjx-error]")) {
    out.math_errors.push(el.getAttribute("data-mjx-error") || snippet(el));
  }
  // TeX delimiters left in ordinary text (outside code and typeset math).
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const delimiters = /\\\(|\\\[|\$\$|\\begin\{|\$[^$\s][^$]*\$/;
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest("pre, code, script, style, mjx-container, .math"))
      continue;
    if (delimiters.test(node.textContent))
      out.raw_math.push(node.textContent.replace(/\s+/g, " ").trim().slice(0, 90));
  }
  // Anything wider than the column, or than the box that should hold it.
  const seen = new Set();
  const boxes = "table, pre, mjx-container[display], img, code";
  for (const el of article.querySelectorAll(boxes)) {
    if (el.tagName === "CODE" && el.closest("pre")) continue;
    const box = el.getBoundingClientRect();
    const inner = el.scrollWidth > el.clientWidth + 1 ? el.scrollWidth : 0;
    const past = box.right - column.right;
    if (box.width === 0 || (inner === 0 && past <= 1)) continue;
    const key = el.tagName + snippet(el);
    if (seen.has(key)) continue;
    seen.add(key);
    const heading = (el.closest("section") || article).querySelector("h1,h2,h3");
    out.wide.push({element: el.tagName.toLowerCase() +
                     (el.className && typeof el.className === "string"
                      ? "." + el.className.trim().split(/\s+/).join(".") : ""),
                   width: Math.round(box.width),
                   content_width: inner || Math.round(box.width),
                   past_column: Math.max(0, Math.round(past)),
                   section: heading ? snippet(heading) : "",
                   longest_line: el.tagName === "PRE" ? Math.max(
                     ...el.textContent.split("\n").map((l) => l.length)) : null,
                   text: snippet(el)});
  }
  for (const el of article.querySelectorAll("blockquote")) {
    out.blockquotes.push(snippet(el));
  }
  for (const img of document.images) {
    if (img.complete && img.naturalWidth === 0)
      out.broken_images.push({src: img.getAttribute("src"), alt: img.alt});
  }
  return JSON.stringify(out);
})()
"""

WAIT_MATHJAX_JS = r"""
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise)
    await MathJax.startup.promise;
  if (document.fonts) await document.fonts.ready;
  return window.MathJax && MathJax.version ? "MathJax " + MathJax.version
                                            : "no MathJax";
})()
"""


NO_MOTION_JS = r"""
(() => {
  const style = document.createElement("style");
  style.textContent = "*, *::before, *::after { transition: none !important; " +
                      "animation: none !important; scroll-behavior: auto !important; }";
  document.head.appendChild(style);
})()
"""

SETTLE_JS = r"""
new Promise((done) => setTimeout(
  () => requestAnimationFrame(() => requestAnimationFrame(done)), 500))
"""

MAX_VIEWPORT = 16000


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """Headless Chromium, driven over its DevTools protocol."""

    def __init__(self, executable: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="check_book_chromium_")
        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu",
             "--hide-scrollbars", "--no-first-run", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", f"--window-size={WIDTH},2000",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.time() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("Chromium did not start its DevTools server")
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as reply:
            targets = json.load(reply)
        page = next(t for t in targets if t.get("type") == "page")
        self.tab = DevTools(page["webSocketDebuggerUrl"])
        self.tab.call("Page.enable")

    def close(self) -> None:
        if getattr(self, "tab", None):
            self.tab.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, path: Path, timeout: float = 60) -> str:
        tab = self.tab
        tab.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=2000,
                 deviceScaleFactor=1, mobile=False)
        tab.call("Page.navigate", url=path.resolve().as_uri())
        deadline = time.time() + timeout
        while tab.evaluate("document.readyState") != "complete":
            if time.time() > deadline:
                raise TimeoutError(f"{path} did not finish loading")
            time.sleep(0.2)
        return tab.evaluate(WAIT_MATHJAX_JS, await_promise=True)

    def inspect(self) -> dict:
        return json.loads(self.tab.evaluate(INSPECT_JS))

    def screenshot_tiles(self, stem: Path, tile_height: int) -> list[Path]:
        # A viewport as tall as the page (up to Chromium's limit), transitions off:
        # captured straight away, the theme's sidebar is caught sliding back into
        # place after the resize that captureBeyondViewport does on its own.
        self.tab.evaluate(NO_MOTION_JS)
        height = int(self.tab.evaluate("document.documentElement.scrollHeight"))
        self.tab.call("Emulation.setDeviceMetricsOverride", width=WIDTH,
                      height=min(height, MAX_VIEWPORT), deviceScaleFactor=1,
                      mobile=False)
        self.tab.evaluate(SETTLE_JS, await_promise=True)
        height = int(self.tab.evaluate("document.documentElement.scrollHeight"))
        tiles = []
        for i, top in enumerate(range(0, height, tile_height), start=1):
            clip = {"x": 0, "y": top, "width": WIDTH,
                    "height": min(tile_height, height - top), "scale": 1}
            shot = self.tab.call("Page.captureScreenshot", format="png", clip=clip,
                                 captureBeyondViewport=top + tile_height > MAX_VIEWPORT)
            tile = stem.with_name(f"{stem.name}-{i:02d}.png")
            tile.write_bytes(base64.b64decode(shot["data"]))
            tiles.append(tile)
        return tiles


def plain_screenshot(executable: str, page: Path, out: Path) -> None:
    """The fallback: Chromium's own --screenshot, the first 2000 px only."""
    subprocess.run([executable, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--window-size={WIDTH},2000",
                    "--virtual-time-budget=10000", f"--screenshot={out}",
                    page.resolve().as_uri()],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=120)


def resolve_pages(html_dir: Path, names: list[str]) -> list[Path]:
    pages = []
    every = sorted(html_dir.rglob("*.html"))
    for name in names:
        direct = html_dir / name
        if direct.is_file():
            pages.append(direct)
            continue
        matches = [p for p in every if p.name.startswith(name)]
        if len(matches) != 1:
            raise SystemExit(f"page {name!r} matches {len(matches)} pages under "
                             f"{html_dir}: give its path, e.g. notebooks/04_dpr.html")
        pages.append(matches[0])
    return pages


def describe(name: str, found: dict) -> list[str]:
    lines = [f"{name}: column {found['column_width']} px, page "
             f"{found['page_height']} px, {found['math_typeset']} formulas typeset"]
    for text in found["raw_math"]:
        lines.append(f"  raw math: {text!r}")
    for text in found["math_errors"]:
        lines.append(f"  math error: {text!r}")
    for item in found["wide"]:
        chars = f", {item['longest_line']} characters" if item["longest_line"] else ""
        lines.append(f"  too wide: <{item['element']}> {item['content_width']} px"
                     f"{chars} "
                     f"(shown {item['width']} px, {item['past_column']} px past the "
                     f"column) in {item['section']!r}: {item['text']!r}")
    for text in found["blockquotes"]:
        lines.append(f"  blockquote: {text!r}")
    for image in found["broken_images"]:
        lines.append(f"  broken image: {image['src']} (alt {image['alt']!r})")
    return lines


def take_screenshots(html_dir: Path, names: list[str], out: Path,
                     tile_height: int) -> int:
    executable = find_chromium()
    if not executable:
        print("no Chromium found: `apt-get update && apt-get install -y chromium`")
        return 3
    out.mkdir(parents=True, exist_ok=True)
    pages = resolve_pages(html_dir, names)
    report = {}
    try:
        browser = Browser(executable)
    except Exception as error:  # the DevTools route failed: take plain screenshots
        print(f"DevTools unavailable ({error}); first 2000 px of each page only")
        for page in pages:
            shot = out / (page.stem + ".png")
            plain_screenshot(executable, page, shot)
            print(f"{page.relative_to(html_dir)}: {shot}")
        return 0
    try:
        for page in pages:
            name = page.relative_to(html_dir).as_posix()
            mathjax = browser.open(page)
            found = browser.inspect()
            found["mathjax"] = mathjax
            found["screenshots"] = [
                str(p) for p in browser.screenshot_tiles(out / page.stem, tile_height)]
            report[name] = found
            print("\n".join(describe(name, found)))
            print(f"  {mathjax}; {len(found['screenshots'])} screenshots: "
                  f"{out / page.stem}-NN.png", flush=True)
    finally:
        browser.close()
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


# ------------------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="store_true",
                        help="build the book first (strict, as CI does)")
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html",
                        help="the built book (default: _build/html)")
    parser.add_argument("--pages", nargs="+", default=DEFAULT_PAGES,
                        help="pages to screenshot: paths under --html or file-name "
                             "prefixes (default: intro, setup, chapters 00 01 04 06)")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "screenshots",
                        help="where screenshots and report.json go")
    parser.add_argument("--tile-height", type=int, default=2000,
                        help="height of one screenshot tile in px (default 2000)")
    parser.add_argument("--no-screenshots", action="store_true",
                        help="only check the links")
    args = parser.parse_args(argv)

    if args.build and build_book() != 0:
        print("the strict book build failed")
        return 2
    if not (args.html / "index.html").exists():
        print(f"no built book at {args.html}: run with --build")
        return 2
    problems = check_links(args.html)
    print(f"link check of {args.html}: {len(problems)} broken links")
    for problem in problems:
        print("  " + problem)
    status = 1 if problems else 0
    if not args.no_screenshots:
        status = max(status, take_screenshots(args.html, args.pages, args.out,
                                              args.tile_height))
    return status


if __name__ == "__main__":
    sys.exit(main())
