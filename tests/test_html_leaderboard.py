"""The static HTML leaderboard: content, escaping, self-containment, and a real headless-browser check.

The browser test drives Debian's chromium over the DevTools protocol (a tiny stdlib websocket
client below): the page must load without console errors or CSP violations, clicking a
header must sort the rows, injected plugin text must not run, and a screenshot is saved
under test-artifacts/. It skips only when chromium is absent and MMBENCH_REQUIRE_BROWSER is unset.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest

from mmbench.records import RunRecord
from mmbench.reports.html import render_html

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
EVIL = '<script>window.__pwned=1</script>"><img src=x onerror="window.__pwned=2">'


def _retrieval(name, r1, *, ci=True, published=(), status="ok", fp="fp-aaaa", protocol="", version="1.0"):
    metrics = {"i2t.R@1": r1, "i2t.R@5": r1 + 15, "i2t.R@10": r1 + 20, "t2i.R@1": r1 - 10, "t2i.R@5": r1 + 10,
               "t2i.R@10": r1 + 15, "i2t.medr": 2.0 if r1 > 50 else 4.0}
    metrics["rsum"] = sum(v for k, v in metrics.items() if "R@" in k)
    cis = {k: [v - 1.5, v + 1.5] for k, v in metrics.items() if "R@" in k} if ci else {}
    rec = RunRecord(task="retrieval", plugin={"name": name, "version": version},
                    dataset={"name": "flickr30k", "split": "test", "protocol": protocol, "fingerprint": fp,
                             "n_samples": 1000},
                    metrics=metrics if status == "ok" else {}, ci=cis if status == "ok" else {},
                    published=list(published), status=status,
                    error="" if status == "ok" else "PluginError: boom\ntraceback line")
    return rec


def _records():
    pub = [{"metric": "i2t.R@1", "published": 78.9, "measured": 78.2, "delta": 78.2 - 78.9, "tolerance": 1.0,
            "within": True, "source": "open_clip retrieval table", "protocol": None},
           {"metric": "t2i.R@1", "published": 58.8, "measured": 68.2, "delta": 68.2 - 58.8, "tolerance": 1.0,
            "within": False, "source": "open_clip <b>retrieval</b> table", "protocol": None}]
    recs = [
        _retrieval("alpha", 41.0),
        _retrieval("clip-vit-b32", 78.2, published=pub),
        _retrieval(EVIL, 60.5),
        _retrieval("broken", 0.0, status="failed"),
        _retrieval("zeta", 12.25, ci=False),
        RunRecord(task="classification", plugin={"name": "sk-early-fusion"},
                  dataset={"name": "mvsa_single_clmlf", "split": "test", "protocol": "clmlf", "fingerprint": "f2"},
                  metrics={"accuracy": 66.0, "f1_weighted": 0.641}, ci={"accuracy": [61.5, 70.25]}),
    ]
    return recs


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self.scripts += 1


def test_html_content_escaping_and_self_containment():
    page = render_html(_records())
    # escaping: the hostile plugin name appears only escaped, never as markup
    assert "<script>window.__pwned" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=" in page
    assert "<b>retrieval</b>" not in page and "&lt;b&gt;retrieval&lt;/b&gt;" in page
    p = _Collector()
    p.feed(page)
    assert p.scripts == 1  # only our own sorting script
    assert not [t for t, a in p.tags if t == "img"]
    # nothing that could reach the network
    for tag, attrs in p.tags:
        for k in ("src", "href"):
            v = attrs.get(k)
            if v is not None:
                assert v.startswith(("#", "data:")), (tag, k, v)
    assert not re.search(r"https?://", page)
    assert "default-src 'none'" in page
    # one section per (task, dataset, split, protocol), badges and fingerprints
    assert page.count("<section") == 2
    assert "protocol: clmlf" in page and "protocol: default" in page
    assert "data fp-aaaa" in page and "data f2" in page
    # values, CIs in titles, whiskers, failed row, published delta column
    assert 'title="i2t.R@1 = 78.2000, 95% CI [76.7000, 79.7000]"' in page
    assert "failed: PluginError: boom" in page and "traceback line" not in page
    assert "Δ vs published" in page
    assert "i2t.R@1 78.90 Δ-0.70 ✓" in page and "t2i.R@1 58.80 Δ+9.40 ✗" in page
    assert page.count('aria-label="rsum across plugins"') == 1
    assert '<th data-first="descending" data-metric="rsum">' in page


def test_html_lower_is_better_columns_sort_ascending_first():
    rec = RunRecord(task="retrieval", plugin={"name": "m"}, dataset={"name": "d", "split": "test"},
                    metrics={"i2t.medr": 3.0, "t2i.meanr": 7.5})
    page = render_html([rec])
    assert '<th data-first="ascending" data-metric="i2t.medr">' in page
    assert '<th data-first="ascending" data-metric="t2i.meanr">' in page
    assert "i2t.medr (lower is better)" in page


def test_html_rows_sorted_by_main_metric_and_mixed_fingerprints_flagged():
    recs = _records()[:3] + [_retrieval("other-data", 90.0, fp="fp-bbbb")]
    page = render_html(recs)
    order = re.findall(r'<tr data-failed="0" data-run="[^"]*"><td data-v="([^"]*)"', page)
    assert order == ["other-data", "clip-vit-b32", EVIL.replace("&", "&amp;").replace("<", "&lt;").replace(
        ">", "&gt;").replace('"', "&quot;"), "alpha"]
    assert "data fingerprints differ (2)" in page


def test_html_empty():
    page = render_html([])
    assert "No run records." in page and page.startswith("<!DOCTYPE html>")


def test_leaderboard_cli_writes_html(tmp_path):
    from typer.testing import CliRunner

    from mmbench import records
    from mmbench.cli import app

    for r in _records():
        records.save(r, tmp_path / "runs")
    out = tmp_path / "lb.html"
    res = CliRunner().invoke(app, ["leaderboard", str(tmp_path / "runs"), "--format", "html", "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert text.count("<section") == 2 and "clip-vit-b32" in text


# --------------------------------------------------------------------------- headless browser


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class _WebSocket:
    """The smallest client the DevTools protocol needs: text frames, masking, ping/pong, fragments."""

    def __init__(self, url: str, timeout: float = 30.0):
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        self.rf = self.sock.makefile("rb")
        status = self.rf.readline()
        if b" 101 " not in status:
            raise RuntimeError(f"websocket handshake failed: {status!r}")
        while self.rf.readline() not in (b"\r\n", b""):
            pass

    def _send_frame(self, opcode: int, payload: bytes):
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, text: str):
        self._send_frame(0x1, text.encode())

    def recv(self) -> str:
        chunks = []
        while True:
            b0, b1 = self.rf.read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.rf.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.rf.read(8))[0]
            mask = self.rf.read(4) if b1 & 0x80 else None
            data = self.rf.read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            op = b0 & 0x0F
            if op == 0x9:
                self._send_frame(0xA, data)
                continue
            if op == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if op in (0x0, 0x1, 0x2):
                chunks.append(data)
                if b0 & 0x80:
                    return b"".join(chunks).decode()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class _CDP:
    def __init__(self, ws: _WebSocket):
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, session: str | None = None, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, timeout: float = 30.0):
        end = time.monotonic() + timeout
        for e in self.events:
            if e.get("method") == method:
                return e
        while time.monotonic() < end:
            m = json.loads(self.ws.recv())
            self.events.append(m)
            if m.get("method") == method:
                return m
        raise TimeoutError(method)


@pytest.fixture
def browser(tmp_path):
    exe = _chromium()
    if exe is None:
        if os.environ.get("MMBENCH_REQUIRE_BROWSER"):
            pytest.fail("MMBENCH_REQUIRE_BROWSER is set but no chromium is installed (apt-get install chromium)")
        pytest.skip("chromium not installed (set MMBENCH_REQUIRE_BROWSER=1 to make this a failure)")
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "--window-size=1300,1500", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ws = None
    try:
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None or time.monotonic() > end:
                pytest.fail(f"chromium did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        ws = _WebSocket(f"ws://127.0.0.1:{port}{path}")
        yield _CDP(ws)
    finally:
        if ws is not None:
            ws.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _open(cdp: _CDP, url: str) -> str:
    target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
    sid = cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for dom in ("Page", "Runtime", "Log"):
        cdp.call(f"{dom}.enable", sid)
    cdp.call("Emulation.setDeviceMetricsOverride", sid, width=1300, height=1500, deviceScaleFactor=1, mobile=False)
    cdp.events.clear()
    cdp.call("Page.navigate", sid, url=url)
    cdp.wait_event("Page.loadEventFired")
    return sid


def _eval(cdp: _CDP, sid: str, expr: str):
    res = cdp.call("Runtime.evaluate", sid, expression=expr, returnByValue=True)
    if "exceptionDetails" in res:
        raise AssertionError(f"page script failed: {res['exceptionDetails']}")
    return res["result"].get("value")


def _click(cdp: _CDP, sid: str, selector: str):
    box = _eval(cdp, sid, f"(function(){{var e=document.querySelector({json.dumps(selector)});"
                          "e.scrollIntoView({block:'center'});var r=e.getBoundingClientRect();"
                          "return [r.left+r.width/2, r.top+r.height/2];})()")
    for kind in ("mousePressed", "mouseReleased"):
        cdp.call("Input.dispatchMouseEvent", sid, type=kind, x=box[0], y=box[1], button="left", clickCount=1)


def _rows(cdp, sid, table=0):
    return _eval(cdp, sid, f"Array.from(document.querySelectorAll('table.lb')[{table}].tBodies[0].rows)"
                           ".map(r => r.cells[0].getAttribute('data-v'))")


def test_html_in_headless_chromium(browser, tmp_path):
    page = tmp_path / "leaderboard.html"
    page.write_text(render_html(_records()), encoding="utf-8")
    cdp = browser
    sid = _open(cdp, page.as_uri())
    assert _eval(cdp, sid, "document.title") == "mmbench leaderboard"
    assert _eval(cdp, sid, "document.querySelectorAll('table.lb').length") == 2
    assert _eval(cdp, sid, "window.__pwned === undefined") is True
    assert _eval(cdp, sid, "document.querySelectorAll('img').length") == 0
    # initial order: by rsum, best first, the failed run last
    assert _rows(cdp, sid) == ["clip-vit-b32", EVIL, "alpha", "zeta", "broken"]
    # click i2t.R@1 (descending first), then again (ascending); failed runs stay last
    _click(cdp, sid, "th[data-metric='i2t.R@1'] button")
    assert _rows(cdp, sid) == ["clip-vit-b32", EVIL, "alpha", "zeta", "broken"]
    assert _eval(cdp, sid, "document.querySelector(\"th[data-metric='i2t.R@1']\").getAttribute('aria-sort')") \
        == "descending"
    _click(cdp, sid, "th[data-metric='i2t.R@1'] button")
    assert _rows(cdp, sid) == ["zeta", "alpha", EVIL, "clip-vit-b32", "broken"]
    # the text column sorts alphabetically
    _click(cdp, sid, "table.lb th:first-child button")
    assert _rows(cdp, sid) == [EVIL, "alpha", "clip-vit-b32", "zeta", "broken"]  # localeCompare: "<" first
    # the screenshot goes to the test artefacts (after sorting back by rsum for a readable picture)
    _click(cdp, sid, "th[data-metric='rsum'] button")
    _eval(cdp, sid, "window.scrollTo(0, 0)")
    shot = cdp.call("Page.captureScreenshot", sid, format="png")
    ARTIFACTS.mkdir(exist_ok=True)
    png = base64.b64decode(shot["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    (ARTIFACTS / "html_leaderboard.png").write_bytes(png)
    # no console errors, exceptions or CSP violations at any point
    errors = [e for e in cdp.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")]
    assert not errors, json.dumps(errors, indent=1)[:2000]


def test_markdown_and_terminal_leaderboards_show_published_deltas():
    from rich.console import Console

    from mmbench.reports import leaderboard as lb

    tables = lb.build_tables(_records())
    md = lb.to_markdown(tables)
    assert "| plugin | i2t.R@1 | i2t.R@5 | i2t.R@10 | t2i.R@1 | t2i.R@5 | t2i.R@10 | rsum | vs published |" in md
    assert "| clip-vit-b32 | 78.20 |" in md
    assert "| i2t.R@1 78.90 (Δ -0.70 ✓); t2i.R@1 58.80 (Δ +9.40 ✗) |" in md
    assert "| alpha | 41.00 | 56.00 | 61.00 | 31.00 | 51.00 | 56.00 | 296.00 | – |" in md
    assert "| broken | failed: PluginError: boom |" + " |" * 7 in md  # 8 metric/published cells in all
    assert "| plugin | accuracy | f1_weighted |\n" in md  # no published column where nobody declares one
    console = Console(width=250, record=True)
    for t in lb.to_rich(tables):
        console.print(t)
    text = console.export_text()
    assert "vs published" in text and "t2i.R@1 58.80 (Δ +9.40 ✗)" in text


def test_html_failed_only_sections_notes_and_reruns_in_headless_chromium(browser, tmp_path):
    """Issue 10 §4 in a real browser: failures of every task are rows (a failed-only section too), notes are
    shown escaped, superseded re-runs are hidden; the page stays free of errors and injected script."""
    recs = _records()
    recs[0].dataset["notes"] = ["flickr30k test: 998 images, the standard copy has 1000", EVIL]
    recs.append(_retrieval("alpha", 1.0, protocol=""))  # an older re-run of alpha: hidden
    recs[-1].created = "2000-01-01T00:00:00+00:00"
    recs.append(RunRecord(task="captioning", plugin={"name": "nn-caption"},
                          dataset={"name": "coco_captions", "split": "val", "protocol": ""}, status="failed",
                          error="PluginError: nn-caption: " + EVIL))
    page = tmp_path / "leaderboard.html"
    page.write_text(render_html(recs), encoding="utf-8")
    cdp = browser
    sid = _open(cdp, page.as_uri())
    assert _eval(cdp, sid, "document.querySelectorAll('table.lb').length") == 3
    assert _eval(cdp, sid, "window.__pwned === undefined") is True
    assert _eval(cdp, sid, "document.querySelectorAll('img').length") == 0
    assert _rows(cdp, sid) == ["clip-vit-b32", EVIL, "alpha", "zeta", "broken"]  # the old alpha is not shown
    assert _rows(cdp, sid, table=2) == ["nn-caption"]
    # every body row spans exactly the header's columns, failed-only table included
    spans = _eval(cdp, sid, "Array.from(document.querySelectorAll('table.lb')).map(t => "
                            "[t.tHead.rows[0].cells.length, Array.from(t.tBodies[0].rows).map(r => "
                            "Array.from(r.cells).reduce((a, c) => a + c.colSpan, 0))])")
    assert all(all(n == head for n in rows) for head, rows in spans), spans
    notes = _eval(cdp, sid, "Array.from(document.querySelectorAll('ul.notes li')).map(li => li.textContent)")
    # the hidden re-run of alpha has other results: the shown row says so (issue 12)
    assert notes[0].startswith("warning: 2 records of this run disagree (different results); showing the newest")
    assert notes[1:] == ["note: flickr30k test: 998 images, the standard copy has 1000 (alpha)",
                         f"note: {EVIL} (alpha)"]
    assert "older re-run" in _eval(cdp, sid, "document.querySelector('p.hidden').textContent")
    _click(cdp, sid, "th[data-metric='rsum'] button")  # sorting still works with the notes beside the table
    errors = [e for e in cdp.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")]
    assert not errors, json.dumps(errors, indent=1)[:2000]
