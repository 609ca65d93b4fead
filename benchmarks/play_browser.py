"""`interworld play` as a user runs it, measured in a headless Chromium: the command is started
as it is typed (default: the shipped model on the CPU), the page is opened, the mouse captured,
W held while the view turns right, and the page's own counters are read every half second.

Prints the median frames per second drawn and the median latency from an action to the first
frame that shows it (the page's figures, VAE decode included), and saves a screenshot.

    python benchmarks/play_browser.py --shot play.jpg
    python benchmarks/play_browser.py --seconds 10 -- --checkpoint runs/world --device cuda

Needs Playwright and a chromium on PATH (Debian: apt-get install chromium), or INTERWORLD_CHROMIUM.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--seconds", type=float, default=6.0, help="how long W is held (default 6)")
p.add_argument("--shot", help="screenshot file (.jpg or .png) taken at the end")
p.add_argument("play_args", nargs="*", help="arguments for `interworld play`, after --")
a = p.parse_args()

from playwright.sync_api import sync_playwright  # noqa: E402  (after --help works without it)

chromium = os.environ.get("INTERWORLD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if not chromium:
    sys.exit("no chromium on PATH (Debian: apt-get install chromium), or set INTERWORLD_CHROMIUM")
server = subprocess.Popen([sys.executable, "-m", "interworld.cli.main", "play", "--port", "0", *a.play_args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
try:
    url = None
    for line in server.stdout:  # the model loads first; then play prints its address
        print(line, end="")
        if m := re.search(r"open (http://\S+)", line):
            url = m.group(1)
            break
    if url is None:
        sys.exit(f"`interworld play` exited with {server.wait()} before printing its address")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.goto(url)
        page.wait_for_function("window.interworld && window.interworld.frames > 0", timeout=120000)
        box = page.locator("#screen").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.click(cx, cy)
        page.wait_for_function("window.interworld.captured")
        page.keyboard.down("w")
        fps, lat = [], []
        t0 = time.monotonic()
        i, first = 0, None  # (time, frames drawn) at the first reading: the rate over the window
        while time.monotonic() - t0 < a.seconds:
            if i < 20:  # a turn to the right in the first second
                page.mouse.move(cx + 6 * (i + 1), cy)
            i += 1
            page.wait_for_timeout(50)
            if i % 10 == 0 and time.monotonic() - t0 > 1.5:  # past the first second's warm-up
                state = page.evaluate("({fps: window.interworld.fps, lat: window.interworld.latencyMs, "
                                      "frames: window.interworld.frames})")
                fps.append(state["fps"])
                last = (time.monotonic(), state["frames"])
                first = first or last
                if state["lat"] is not None:
                    lat.append(state["lat"])
        if a.shot:
            page.screenshot(path=a.shot, **({"quality": 85} if a.shot.endswith(".jpg") else {}))
        page.keyboard.up("w")
        errors = page.evaluate("window.interworld.errors")
        browser.close()
    if errors:
        sys.exit(f"the server reported errors: {errors}")
    if not fps:
        sys.exit("no readings: hold W longer (--seconds)")
    # the page's counter is the frames drawn in the last second, a whole number: chunks of 4 frames
    # arriving 0.7 s apart read 4 or 8; the mean rate over the window says more
    rate = (last[1] - first[1]) / (last[0] - first[0]) if last[0] > first[0] else float("nan")
    print(f"play: {statistics.median(fps):.1f} fps drawn (median of {len(fps)} readings; {rate:.2f} over "
          f"{last[0] - first[0]:.1f} s), latency from an action "
          f"to its first frame {statistics.median(lat) / 1000 if lat else float('nan'):.2f} s (median)"
          + (f"; screenshot {a.shot}" if a.shot else ""))
finally:
    server.terminate()
    server.wait(10)
