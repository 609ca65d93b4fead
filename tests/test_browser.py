"""`interworld play` end to end in a real headless Chromium (Debian's `chromium`, driven by
Playwright through executable_path: no browser download), playing the tiny preset.

Skipped when Playwright or chromium is missing, unless INTERWORLD_REQUIRE_BROWSER=1 (set by
.ci/run), where a missing browser fails the test instead.
"""

import os
import shutil

import pytest

from play_helpers import EXAMPLES, serving

CHROMIUM = os.environ.get("INTERWORLD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("INTERWORLD_REQUIRE_BROWSER") == "1"


def _need(ok, reason: str) -> None:
    if ok:
        return
    if REQUIRED:
        pytest.fail(f"{reason}; INTERWORLD_REQUIRE_BROWSER=1 says this machine must run the browser test")
    pytest.skip(reason)


def _canvas(page) -> str:
    return page.evaluate("document.getElementById('screen').toDataURL()")


def test_play_in_headless_chromium(tmp_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    _need(sync_playwright is not None, "playwright is not installed (pip install playwright)")
    _need(CHROMIUM, "no chromium on PATH (Debian: apt-get install chromium)")
    shot = tmp_path / "play.png"
    with serving(fps=None) as srv, sync_playwright() as pw:  # the tiny preset at its own 10 fps
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(srv.url)
            page.wait_for_function("window.interworld && window.interworld.frames > 0", timeout=30000)
            assert page.text_content("#model") == "tiny"
            assert page.input_value("#image") == "start.png"
            before, frames_before = _canvas(page), page.evaluate("window.interworld.frames")

            box = page.locator("#screen").bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.click(cx, cy)  # capture the mouse
            page.wait_for_function("document.pointerLockElement === document.getElementById('screen')"
                                   " && window.interworld.captured")
            assert page.is_hidden("#overlay")
            page.keyboard.down("w")
            page.wait_for_function("document.querySelector('.cap[data-key=w]').classList.contains('on')")
            for i in range(15):  # look right and a little down while walking
                page.mouse.move(cx + 8 * (i + 1), cy + 2 * (i + 1))
                page.wait_for_timeout(40)
            seq = page.evaluate("window.interworld.seq")
            assert seq >= 2  # the key press and mouse motion went out as action messages
            # a frame that includes the newest action arrives, and its latency is measured
            page.wait_for_function(f"window.interworld.lastAction >= {seq}", timeout=30000)
            page.wait_for_function("window.interworld.latencyMs !== null")
            page.wait_for_timeout(1300)  # the fps counter covers the last second
            page.screenshot(path=str(shot))
            fps = float(page.text_content("#fps"))
            latency = float(page.text_content("#latency"))
            frames_after = page.evaluate("window.interworld.frames")
            after = _canvas(page)
            page.keyboard.up("w")

            assert fps > 0, "the fps counter stayed at zero"
            assert latency > 0
            assert frames_after > frames_before + 5, (frames_before, frames_after)
            assert after != before, "the canvas never changed"
            reported = page.evaluate("window.interworld.errors")
            assert not reported, f"the server reported errors: {reported}"

            page.keyboard.press("Escape")  # releases the mouse
            page.wait_for_function("document.pointerLockElement === null && !window.interworld.captured")
            assert page.is_visible("#overlay")

            page.click("#record")  # record a little, then the page offers the MP4
            page.wait_for_selector("#record.rec")
            page.wait_for_timeout(800)
            page.click("#record")
            link = page.wait_for_selector("#download:not([hidden])")
            mp4 = page.request.get(srv.url + link.get_attribute("href"))
            assert mp4.ok and mp4.headers["content-type"] == "video/mp4" and len(mp4.body()) > 1000

            n = page.evaluate("window.interworld.frames")  # restart from an uploaded image
            page.set_input_files("#upload", str(EXAMPLES / "start.png"))
            page.wait_for_function(f"window.interworld.frames > {n} + 3", timeout=30000)
            assert page.input_value("#image") == "__upload__"
            assert not page.evaluate("window.interworld.errors")
            assert not errors, errors
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("INTERWORLD_SCREENSHOT"):  # keep a copy to look at
        shutil.copy(shot, os.environ["INTERWORLD_SCREENSHOT"])
