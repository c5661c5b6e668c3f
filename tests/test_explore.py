"""`vaekit explore RUN`: the server's routes and refusals, the CLI's bad input, and the page itself in a
real headless Chromium (Debian's package, driven by Playwright) for an image, a text and a tabular run."""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import vaekit
from vaekit.anomaly import read_inputs
from vaekit.cli import main
from vaekit.explore import Explorer, make_server

from .test_cli import run_cli
from .test_text import SENTENCES, SMALL

CHROMIUM = os.environ.get("VAEKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# No GPU, no network beyond 127.0.0.1, nothing fetched in the background.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IMAGE_LIMIT = 500  # examples of the digits on the image map (--limit)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny image, text and tabular run, trained in a few seconds each."""
    folder = tmp_path_factory.mktemp("runs")
    (folder / "sentences.txt").write_text("\n".join(SENTENCES) + "\n")
    small_text = [a if a != "3" else "1" for a in SMALL]  # one epoch
    commands = {"image": ["image", "--model", "seed", "--epochs", "1", "--limit", "400", "--no-progress"],
                "text": ["text", "--data", str(folder / "sentences.txt"), *small_text],
                "tabular": ["tabular", "--data", "iris", "--latent-dim", "2", "--epochs", "3", "--no-progress"]}
    for kind, args in commands.items():
        assert main(["train", *args, "--out", str(folder / kind)]) == 0
    return folder


@pytest.fixture(scope="module")
def servers(runs):
    """An explorer server per kind, in this process: {kind: (url, explorer)}."""
    data = {"image": "digits", "text": str(runs / "sentences.txt"), "tabular": "iris"}
    limits = {"image": IMAGE_LIMIT, "text": None, "tabular": None}
    started = {}
    for kind in data:
        run = vaekit.load(runs / kind)
        explorer = Explorer(run, read_inputs(run, data[kind], limits[kind]), echo=lambda *a: None)
        server = make_server(explorer, 0)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started[kind] = (server.url, explorer, server)
    yield {kind: (url, explorer) for kind, (url, explorer, _) in started.items()}
    for _, _, server in started.values():
        server.shutdown()
        server.server_close()


def request(url: str, path: str, body=None, raw: bytes | None = None, headers: dict | None = None):
    """(status, parsed JSON or bytes) of one request; errors are answers, not exceptions."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url.rstrip("/") + path, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, payload, kind = r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, payload, kind = e.code, e.read(), e.headers.get("Content-Type", "")
    return status, json.loads(payload) if kind.startswith("application/json") else payload


# ---- the server, without a browser -----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["image", "text", "tabular"])
def test_endpoints_answer_for_every_kind(servers, kind):
    url, explorer = servers[kind]
    status, info = request(url, "/api/info")
    assert status == 200 and info["kind"] == kind and len(info["kl_per_dim"]) == info["latent_dim"]
    status, points = request(url, "/api/points")
    assert status == 200 and len(points["x"]) == len(points["score"]) == len(points["elbo"]) == info["n"]
    if kind == "image":
        assert info["n"] == IMAGE_LIMIT and len(points["label"]) == IMAGE_LIMIT
    status, example = request(url, "/api/example?i=3")
    assert status == 200 and example["i"] == 3 and len(example["z"]) == info["latent_dim"]
    item_key = {"image": "image", "text": "text", "tabular": "row"}[kind]
    assert item_key in example["input"] and item_key in example["reconstruction"]
    status, decoded = request(url, f"/api/decode?x={points['x'][0]}&y={points['y'][0]}")
    assert status == 200 and item_key in decoded["output"]
    if info["latent_dim"] > 2:  # decoded from the mean code of the nearest examples on the map
        assert "nearest" in info["decoding"] and 0 in decoded["neighbours"]
    z = example["z"]
    status, strip = request(url, "/api/interpolate", {"a": z, "b": decoded["z"], "steps": 5})
    assert status == 200 and len(strip["outputs"]) == 5
    status, sweep = request(url, "/api/traverse", {"z": z, "dim": 0})
    assert status == 200 and len(sweep["outputs"]) == len(sweep["values"]) == 9
    status, varied = request(url, "/api/vary", {"i": 3, "n": 3})
    assert (status, len(varied.get("variations", []))) == ((200, 3) if kind == "text" else (400, 0))


def test_image_decode_at_a_point_of_a_2d_latent_decodes_that_very_code(servers):
    url, explorer = servers["image"]
    assert explorer.z.shape[1] == 2
    status, decoded = request(url, "/api/decode?x=0.25&y=-1.5")
    assert status == 200 and decoded["z"] == [0.25, -1.5]
    status, same = request(url, "/api/decode", {"z": [0.25, -1.5]})
    assert same["output"] == decoded["output"]


def test_only_its_own_routes_and_bounded_requests(servers):
    url, _ = servers["image"]
    assert request(url, "/")[0] == 200
    for path in ["/../../etc/passwd", "/static/../index.html", "/app.js/../../x", "/%2e%2e/config.json",
                 "/api/nothing", "/config.json", "/model.safetensors"]:
        assert request(url, path)[0] == 404, path
    bad = [("/api/example?i=-1", None), ("/api/example?i=99999", None), ("/api/example?i=abc", None),
           ("/api/decode?x=nan&y=0", None), ("/api/decode?x=1", None), ("/api/decode?x=1&y=2&y", None),
           ("/api/decode", {"z": [1.0]}), ("/api/decode", {"z": ["a", "b"]}), ("/api/decode", {"z": [1e30, 0]}),
           ("/api/decode", [1, 2]), ("/api/traverse", {"z": [0, 0], "dim": 5}),
           ("/api/interpolate", {"a": [0, 0], "b": [1, 1], "steps": 10 ** 6})]
    for path, body in bad:
        status, answer = request(url, path, body)
        assert status == 400 and answer["error"], (path, body)
    assert request(url, "/api/decode", raw=b"{not json")[0] == 400
    assert request(url, "/api/decode", raw=b"x" * 70_000)[0] == 413
    assert request(url, "/", headers={"Host": "evil.example:80"})[0] == 403  # DNS rebinding
    # Requests that are not HTTP, on a raw socket: refused, and the server goes on serving.
    host, port = url.split("//")[1].rstrip("/").split(":")
    for raw, answer in [(b"\x16\x03\x01 garbage\r\n\r\n", b"400"),
                        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", b"414"),
                        (f"POST /api/decode HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode(), b"411")]:
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(raw)
            assert answer in s.recv(1000), raw[:40]
    assert request(url, "/api/info")[0] == 200


def test_the_page_loads_nothing_from_elsewhere():
    from importlib import resources

    folder = resources.files("vaekit.explore") / "static"
    for name in ("index.html", "app.js", "style.css"):
        text = (folder / name).read_text()
        assert "http://" not in text and "https://" not in text and "@import" not in text, name


# ---- the command line ----------------------------------------------------------------------------
def test_cli_bad_input_is_one_message(runs, tmp_path, capsys):
    not_a_run = tmp_path / "folder"
    not_a_run.mkdir()
    code, _, err = run_cli(capsys, "explore", not_a_run)
    assert code == 2 and ("not a vaekit run" in err or "config.json" in err), err
    code, _, err = run_cli(capsys, "explore", tmp_path / "missing")
    assert code == 2 and "no such run directory" in err
    # The data the run was trained on has gone: say to pass --data.
    data = runs / "sentences.txt"
    data.rename(runs / "moved.txt")
    try:
        code, _, err = run_cli(capsys, "explore", runs / "text", "--port", "0")
    finally:
        (runs / "moved.txt").rename(data)
    assert code == 2 and "--data" in err and "sentences.txt" in err and len(err.strip().splitlines()) == 1
    # A port in use.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        code, _, err = run_cli(capsys, "explore", runs / "tabular", "--port", taken.getsockname()[1])
    assert code == 2 and "is in use" in err and "--port" in err
    code, _, err = run_cli(capsys, "explore", runs / "tabular", "--port", "70000")
    assert code == 2 and "0..65535" in err


def test_cli_serves_until_stopped(runs):
    """The verb as a user runs it: prints the address, serves the page, stops on Ctrl-C (SIGINT)."""
    import signal

    env = {**os.environ, "PYTHONPATH": str(Path(vaekit.__file__).parents[1])}
    # Ctrl-C as at a terminal: a test suite started in the background (`cmd &` without job control)
    # passes SIGINT on as ignored, and Python then keeps ignoring it, as a backgrounded server should.
    proc = subprocess.Popen([sys.executable, "-m", "vaekit.cli", "explore", str(runs / "tabular")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    guard = threading.Timer(120, proc.kill)  # a server that never says its address fails the test, not CI
    guard.start()
    try:
        lines = [proc.stdout.readline()]  # what it did at start, then the address
        while lines[-1] and "exploring" not in lines[-1]:
            lines.append(proc.stdout.readline())
        assert "http://127.0.0.1:" in lines[-1], lines
        url = lines[-1].split(" at ")[1].split()[0]
        status, info = request(url, "/api/info")
        assert status == 200 and info["n"] == 150 and info["columns"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"explore did not stop within 30 s of Ctrl-C; its stderr:\n{err}")
        finally:
            guard.cancel()
    assert proc.returncode == 0 and "Traceback" not in err, f"exit status {proc.returncode}; stderr:\n{err}"


# ---- the page in a real browser ------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's (apt-get install chromium) or set VAEKIT_CHROMIUM")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra: "
                                   "pip install -e '.[test]'")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(url)
    page.wait_for_selector("body[data-ready]", timeout=30_000)  # wait_for_function would eval: the CSP forbids it
    return page, errors


def point_on_screen(page, i):
    box = page.locator("#map").bounding_box()
    at = page.evaluate(f"vaekitExplore.screenOf({i})")
    return box["x"] + at["x"], box["y"] + at["y"]


@pytest.mark.parametrize("kind", ["image", "text", "tabular"])
def test_page_in_chromium(browser, servers, kind, tmp_path):
    url, explorer = servers[kind]
    page, errors = open_page(browser, url)
    n = len(explorer.z)
    assert page.evaluate("vaekitExplore.n") == n and page.evaluate("vaekitExplore.visible") == n
    assert page.locator("#map").get_attribute("data-points") == str(n)
    shown = {"image": "img.decoded", "text": ".sentence", "tabular": "table.row"}[kind]
    # Hover an example: it appears beside its reconstruction.
    page.mouse.move(*point_on_screen(page, 7))
    page.wait_for_selector(f"#hover[data-index] {shown}", timeout=15_000)
    assert page.locator(f"#hover {shown}").count() >= (2 if kind != "tabular" else 1)
    assert "ELBO" in page.locator("#hover").inner_text()
    # Click a point: the decoded output appears, and the sliders hold its code.
    x, y = point_on_screen(page, 7)
    page.mouse.click(x + 2, y + 2)
    page.wait_for_selector(f"#decoded[data-count] {shown}", timeout=15_000)
    page.wait_for_selector(f"#slider-output {shown}", timeout=15_000)
    assert page.locator("#sliders input[type=range]").count() == min(explorer.z.shape[1], 64)
    if kind == "text":
        page.wait_for_selector("#variations .sentence", timeout=15_000)
    # Shift-click another point: the interpolation between the two.
    page.keyboard.down("Shift")
    page.mouse.click(*point_on_screen(page, n - 1))
    page.keyboard.up("Shift")
    page.wait_for_selector(f"#interpolation {shown}", timeout=15_000)
    # A traversal of the first dimension; the colour by anomaly score; zoom and pan keep drawing.
    page.locator("#sliders button").first.click()
    page.wait_for_selector(f"#traversal {shown}", timeout=15_000)
    page.select_option("#colour-by", "score")
    frames = page.evaluate("vaekitExplore.frames")
    page.mouse.move(640, 400)
    page.mouse.wheel(0, -300)
    page.mouse.down()
    page.mouse.move(700, 430, steps=4)
    page.mouse.up()
    for _ in range(100):  # polled with evaluate (Chromium's DevTools side, outside the page's CSP)
        if page.evaluate("vaekitExplore.frames") > frames:
            break
        page.wait_for_timeout(100)
    assert page.evaluate("vaekitExplore.frames") > frames
    page.mouse.move(*point_on_screen(page, 7))
    page.screenshot(path=str(tmp_path / f"explore-{kind}.png"))
    assert (tmp_path / f"explore-{kind}.png").stat().st_size > 10_000
    assert errors == []
    page.close()
