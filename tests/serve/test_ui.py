"""The web UI in headless Chromium: upload, ask, see the overlay in the palette colour, follow up, download masks.

Uses the system Chromium (Debian's `chromium` package, which `.ci/run` installs) through Playwright, never a
browser Playwright downloads. Skipped only when Playwright or Chromium is missing.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from sa2va.grounding.masks import rle_to_mask
from sa2va.overlay import PALETTE
from sa2va.testing import teacher_forcing

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
if CHROMIUM is None:
    pytest.skip("no Chromium executable on PATH (apt-get install chromium)", allow_module_level=True)

# the natural-size pixels of the newest turn's overlay image, read back through a canvas
READ_OVERLAY = """() => {
  const image = document.querySelector('.turn img.overlay');
  const canvas = document.createElement('canvas');
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0);
  return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data);
}"""
OVERLAY_LOADED = "() => { const i = document.querySelector('.turn img.overlay'); return i && i.complete && i.naturalWidth > 0; }"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_ui_overlay_phrases_follow_up_and_downloads(browser, tiny, tiny_server, tmp_path):
    width, height = 48, 40
    image_path = tmp_path / "black.png"
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(image_path)
    page = browser.new_page(accept_downloads=True)
    page_errors = []
    page.on("pageerror", lambda error: page_errors.append(error))
    page.goto(tiny_server.url)
    sync_api.expect(page.locator("#model")).to_contain_text("tiny")

    page.set_input_files("#file", str(image_path))
    page.fill("#text", "Describe the picture with masks.")
    with teacher_forcing(tiny, "<p> The box </p> [SEG] is black."), page.expect_response("**/v1/chat") as reply:
        page.click("#send")
    data = reply.value.json()
    page.wait_for_function(OVERLAY_LOADED)

    # overlay pixels: on a black image every mask pixel is the palette colour at half strength, the rest black
    mask = rle_to_mask(data["masks"][0]["rle"][0])
    assert 0 < mask.sum() < mask.size
    blended = np.floor(np.asarray(PALETTE[0]) * 0.5 + 0.5).astype(np.uint8)  # overlay_masks, alpha 0.5
    pixels = np.asarray(page.evaluate(READ_OVERLAY), np.uint8).reshape(height, width, 4)[..., :3]
    assert (pixels[mask] == blended).all() and (pixels[~mask] == 0).all()
    # ... and they reach the screen: the rendered element (scaled up, pixelated) shows that colour
    shot = np.asarray(Image.open(io.BytesIO(page.locator(".turn img.overlay").screenshot())).convert("RGB"))
    on_screen = (np.abs(shot.astype(int) - blended).max(axis=-1) <= 2).mean()
    assert abs(on_screen - mask.mean()) < 0.1, (on_screen, mask.mean())

    # the grounded phrase and its chip carry the same colour as the mask in the overlay
    phrase = page.locator(".turn .answer .phrase").first
    sync_api.expect(phrase).to_have_text("The box")
    colour = f"rgb({', '.join(map(str, PALETTE[0]))})"
    assert phrase.evaluate("e => getComputedStyle(e).color") == colour
    assert page.locator(".turn .chip").first.evaluate("e => getComputedStyle(e).backgroundColor") == colour
    sync_api.expect(page.locator(".turn .answer")).to_have_text("The box is black.")

    # downloads: the JSON RLE as answered, and a PNG decoded in the browser from that RLE
    with page.expect_download() as download:
        page.click(".turn .download-json")
    saved = json.loads(download.value.path().read_text())
    assert saved["masks"] == data["masks"] and (saved["width"], saved["height"]) == (width, height)
    with page.expect_download() as download:
        page.click(".turn .download-png")
    assert download.value.suggested_filename == "obj0_frame00000.png"
    png = np.asarray(Image.open(download.value.path()).convert("L"))
    assert ((png > 127) == mask).all()

    # a follow-up continues the same conversation without uploading again
    page.fill("#text", "What colour is it?")
    with teacher_forcing(tiny, "It is black."), page.expect_request("**/v1/chat") as sent, \
            page.expect_response("**/v1/chat") as follow_up:
        page.keyboard.press("Enter")
    assert follow_up.value.json()["conversation_id"] == data["conversation_id"]
    assert b'name="file"' not in (sent.value.post_data_buffer or b"")
    sync_api.expect(page.locator(".turn")).to_have_count(2)
    sync_api.expect(page.locator(".turn .answer").first).to_have_text("It is black.")
    sync_api.expect(page.locator(".turn .downloads").first).to_be_hidden()  # no masks in that answer
    sync_api.expect(page.locator(".turn .frames").first).to_be_hidden()  # an image has no frame slider
    assert not page_errors
    page.close()
