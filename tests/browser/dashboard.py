#!/usr/bin/env python3
"""The dashboard in a real browser: Debian's chromium, headless, driven by
Python playwright.

Two peered `laterbase serve` processes from the binary given: the page's
node (A) dials its peer (B) through a relay this script holds open for its
whole run, so that B, killed and started again on a port of the system's
choosing, is back at the address A knows (no port is ever bound, dropped
and bound again). The page asks for the token, then must show: a database
created on A, the writes in its chart, B's events synced in, B as failing
once killed and as ok once back (with a lag of 0 / 0 when /status gives a
lag). Screenshots at a laptop's and a phone's width go to --out.

Every wait polls up to a deadline; nothing sleeps to synchronise.

Run with: python3 tests/browser/dashboard.py --bin target/debug/laterbase
"""

import argparse
import ctypes
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "dashboard-test-token"
# How long any one thing may take before the test fails.
DEADLINE_S = 30
WAIT_MS = DEADLINE_S * 1000
# Sync every 200 ms; a peer that fails is retried within a second, so that
# five failures in a row (failing) and the way back (ok) take seconds.
SYNC_FLAGS = ["--sync-interval-ms", "200", "--sync-backoff-ms-max", "1000"]


# Looked up before any thread starts: between fork and exec the child only
# calls it.
PRCTL = ctypes.CDLL(None, use_errno=True).prctl
PR_SET_PDEATHSIG = 1


def die_with_this_script():
    """Run in each node's process before it starts: the node is killed if
    this script dies, however it dies, so that no node outlives a run."""
    PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


class Node:
    """A `laterbase serve` process, its address read from its "serving" line."""

    def __init__(self, binary, data_dir, name, extra=()):
        self.name = name
        self.lines = []
        self.process = subprocess.Popen(
            [binary, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0",
             "--token", TOKEN, *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "RUST_LOG": "info", "NO_COLOR": "1"},
            text=True,
            preexec_fn=die_with_this_script,
        )
        serving = queue.Queue()
        threading.Thread(target=self._drain, args=(serving,), daemon=True).start()
        try:
            line = serving.get(timeout=DEADLINE_S)
        except queue.Empty:
            self.stop()
            raise AssertionError(f"{name} printed no serving line:\n{self.log()}")
        if line is None:
            raise AssertionError(f"{name} exited before serving:\n{self.log()}")
        address = next(
            field.split("=", 1)[1] for field in line.split() if field.startswith("listen=")
        )
        host, port = address.rsplit(":", 1)
        self.address = (host, int(port))
        self.url = f"http://{address}"

    def _drain(self, serving):
        told = False
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            if not told and "serving" in line and "listen=" in line:
                serving.put(line)
                told = True
        if not told:
            serving.put(None)

    def log(self):
        return "\n".join(f"  [{self.name}] {line}" for line in self.lines[-60:])

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=DEADLINE_S)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=DEADLINE_S)


class Relay:
    """A fixed address in front of a node that comes back on another port:
    each connection goes to the node's current address; while it is down a
    connection is closed at once, as a refused one would be."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.url = f"http://{self.address[0]}:{self.address[1]}"
        self.target = None
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def forward_to(self, address):
        with self.lock:
            self.target = address

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                target = self.target
            threading.Thread(target=self._serve, args=(client, target), daemon=True).start()

    @staticmethod
    def _serve(client, target):
        try:
            server = socket.create_connection(target, timeout=DEADLINE_S) if target else None
        except OSError:
            server = None
        if server is None:
            client.close()
            return
        upstream = threading.Thread(target=Relay._pipe, args=(client, server), daemon=True)
        upstream.start()
        Relay._pipe(server, client)
        upstream.join(timeout=DEADLINE_S)
        client.close()
        server.close()

    @staticmethod
    def _pipe(source, sink):
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.listener.close()


def call(node, method, path, body=None):
    """One request with the token; the status and the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(node.url + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE_S) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def until(what, check):
    """Polls `check` until it gives something true, within the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def peer_state(page):
    return page.locator("#peers tbody tr .state").first.text_content()


def wait_for_state(page, state):
    page.wait_for_function(
        """state => {
            const cell = document.querySelector('#peers tbody tr .state');
            return cell !== null && cell.textContent === state;
        }""",
        arg=state,
        timeout=WAIT_MS,
    )


def screenshots(page, out, suffix):
    for name, width, height in [("laptop", 1366, 768), ("phone", 390, 844)]:
        page.set_viewport_size({"width": width, "height": height})
        # A resize re-lays the page out: one animation frame is enough.
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => done()))")
        path = os.path.join(out, f"dashboard-{suffix}-{name}.png")
        page.screenshot(path=path, full_page=True)
        print(f"screenshot: {path}")
        # Nothing spills sideways at either width.
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is {overflow}px wider than a {name} screen"
    page.set_viewport_size({"width": 1366, "height": 768})


def dashboard(page, nodes, relay, binary, b_dir, out):
    b, a = nodes
    a_id = call(a, "GET", "/status")[1]["node"]["id"]

    # The page and its assets need no token; /status does: the page asks once.
    page.goto(a.url + "/ui")
    page.wait_for_selector("#token-form:not([hidden])", timeout=WAIT_MS)
    page.fill("#token", TOKEN)
    page.click("#token-form button[type=submit]")
    page.wait_for_function(
        "id => document.getElementById('node-id').textContent === id", arg=a_id, timeout=WAIT_MS
    )
    assert page.evaluate("() => sessionStorage.getItem('laterbase-token')") == TOKEN
    assert page.locator("#token-form").is_hidden()

    # A database created on the node appears.
    assert call(a, "PUT", "/db/yard")[0] == 201
    page.wait_for_selector('#databases tbody tr[data-name="yard"]', timeout=WAIT_MS)

    # Writes show in the chart and the database's rate.
    status, answer = call(a, "POST", "/db/yard/e", [{"data": {"n": n}} for n in range(25)])
    assert status == 200, answer
    page.wait_for_function(
        "() => Number(document.getElementById('chart').dataset.written) >= 25", timeout=WAIT_MS
    )
    written = page.locator('#databases tbody tr[data-name="yard"] .writes').text_content()
    assert float(written) > 0, written
    points = page.locator("#chart polyline.written").get_attribute("points")
    assert len(points.split()) == 300, points

    # The peer is ok; what is written on it is synced in, and shows so.
    wait_for_state(page, "ok")
    until("yard on the peer", lambda: call(b, "GET", "/db/yard")[0] == 200)
    status, answer = call(b, "POST", "/db/yard/e", [{"data": {"from": "b", "n": n}} for n in range(7)])
    assert status == 200, answer
    page.wait_for_function(
        "() => Number(document.getElementById('chart').dataset.synced) >= 7", timeout=WAIT_MS
    )
    screenshots(page, out, "ok")

    # The peer killed: failing, with the error, after five failed passes.
    b.kill()
    relay.forward_to(None)
    wait_for_state(page, "failing")
    error = page.locator("#peers tbody tr td.error").first.text_content()
    assert error.strip(), "the last error is shown"
    screenshots(page, out, "failing")

    # Started again on its data directory: ok again, the error gone.
    b = Node(binary, b_dir, "b (restarted)")
    nodes.append(b)
    relay.forward_to(b.address)
    wait_for_state(page, "ok")
    page.wait_for_function(
        "() => document.querySelector('#peers tbody tr td.error').textContent === ''",
        timeout=WAIT_MS,
    )
    if "lag" in call(a, "GET", "/status")[1]["peers"][0]:
        page.wait_for_function(
            "() => document.querySelector('#peers tbody tr td.lag').textContent === '0 / 0'",
            timeout=WAIT_MS,
        )
    screenshots(page, out, "recovered")


def main():
    # A SIGTERM (the Rust test's own deadline) stops the nodes on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="the laterbase binary")
    parser.add_argument("--out", default="target/browser", help="where screenshots go")
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    if not os.access(CHROMIUM, os.X_OK):
        sys.exit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("python playwright is missing: pip install playwright (the version .ci/run pins)")

    work = tempfile.mkdtemp(prefix="laterbase-browser-")
    a_dir, b_dir = os.path.join(work, "a"), os.path.join(work, "b")
    relay = Relay()
    nodes = []
    try:
        b = Node(binary, b_dir, "b")
        nodes.append(b)
        relay.forward_to(b.address)
        a = Node(binary, a_dir, "a", ["--peer", relay.url, *SYNC_FLAGS])
        nodes.append(a)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1366, "height": 768})
                problems = []

                def console(message):
                    # The first read of /status is refused until the token
                    # is given: the browser logs that 401 itself.
                    if message.type == "error" and "401" not in message.text:
                        problems.append(f"console: {message.text}")

                page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
                page.on("console", console)
                dashboard(page, nodes, relay, binary, b_dir, out)
                assert not problems, problems
            finally:
                browser.close()
        print("dashboard: 1 passed, 0 failed")
    except BaseException:
        for node in nodes:
            print(node.log(), file=sys.stderr)
        raise
    finally:
        for node in nodes:
            node.stop()
        relay.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
