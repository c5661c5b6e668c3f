"""The README's screenshots of `vaekit explore`, taken from the real page in headless Chromium.

    python docs/screenshots.py RUN DATA OUT.png [--points I J K]

Starts the explorer on RUN (DATA as `--data`), hovers example I, clicks example I, shift-clicks
example J, sweeps the dimension with the largest KL, hovers example K and saves the page (colours
reduced to a palette, so the PNG stays small).
"""
from __future__ import annotations

import argparse
import shutil
import threading

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--points", type=int, nargs=3, default=(0, 1, 2))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()

    from PIL import Image
    from playwright.sync_api import sync_playwright

    import vaekit
    from vaekit.anomaly import read_inputs
    from vaekit.explore import Explorer, make_server

    run = vaekit.load(args.run)
    explorer = Explorer(run, read_inputs(run, args.data, None))
    server = make_server(explorer, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hover, first, second = args.points
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 760})
        page.goto(server.url)
        page.wait_for_selector("body[data-ready]", timeout=120_000)  # the page's CSP forbids wait_for_function's eval
        box = page.locator("#map").bounding_box()

        def at(i):
            point = page.evaluate(f"vaekitExplore.screenOf({i})")
            return box["x"] + point["x"], box["y"] + point["y"]

        page.mouse.click(*at(first))
        page.wait_for_selector("#decoded[data-count]")
        page.keyboard.down("Shift")
        page.mouse.click(*at(second))
        page.keyboard.up("Shift")
        page.wait_for_selector("#interpolation .item, #interpolation table")
        strongest = max(range(len(explorer.kl_per_dim)), key=lambda d: explorer.kl_per_dim[d])
        page.locator("#sliders button").nth(min(strongest, 63)).click()
        page.wait_for_selector("#traversal .item, #traversal table")
        page.evaluate("document.querySelector('aside').scrollTop = 0")  # the sweep button's click scrolled it
        page.mouse.move(*at(hover))
        page.wait_for_selector(f"#hover[data-index='{hover}']")
        page.wait_for_timeout(300)
        page.screenshot(path=args.out)
        browser.close()
    server.shutdown()
    image = Image.open(args.out).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    image.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
