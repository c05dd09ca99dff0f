"""Drive the demo hub in real headless Chromium (Debian's package) through Playwright."""

import re
import socket
import time
import urllib.request

import numpy as np
import pytest

from mnemovision.vision.io import write_image
from mnemovision.vision.metrics import image_psnr

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory):
    from mnemovision.demos.hub import serve

    port = free_port()
    app = serve(host="127.0.0.1", port=port, block=False, workdir=tmp_path_factory.mktemp("hub"))
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        pytest.fail(f"demo hub did not answer at {url}")
    yield url
    app.close()


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.conftest import chromium_path

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1400})
        yield context.new_page()
        browser.close()


def test_hub_binds_loopback_only(hub_url):
    assert hub_url.startswith("http://127.0.0.1:")


def test_metrics_tab_in_a_real_browser(hub_url, page, tmp_path, artifacts_dir):
    import skimage.data

    ref = skimage.data.astronaut()[::2, ::2].copy()
    rng = np.random.default_rng(0)
    pred = np.clip(ref.astype(np.float64) + rng.normal(0, 10, ref.shape), 0, 255).round().astype(np.uint8)
    write_image(tmp_path / "pred.png", pred)
    write_image(tmp_path / "ref.png", ref)
    expected = image_psnr(pred, ref, crop_border=2)

    page.goto(hub_url, wait_until="domcontentloaded")
    page.get_by_text("mnemovision", exact=False).first.wait_for(timeout=30000)
    page.get_by_role("tab", name="Metrics").click()
    page.locator("#metrics-pred input[type=file]").set_input_files(str(tmp_path / "pred.png"))
    page.locator("#metrics-target input[type=file]").set_input_files(str(tmp_path / "ref.png"))
    page.locator("#metrics-pred img").first.wait_for(timeout=30000)
    page.locator("#metrics-target img").first.wait_for(timeout=30000)
    crop = page.locator("#metrics-crop input")
    crop.fill("2")
    crop.press("Tab")
    page.locator("#metrics-compute").click()
    table = page.locator("#metrics-table")
    table.get_by_text("psnr_y").wait_for(timeout=60000)
    text = table.inner_text()
    match = re.search(r"psnr\s+([0-9.]+)", text)
    assert match, text
    assert float(match.group(1)) == pytest.approx(expected, abs=1e-3)
    page.locator("#metrics-error-map img").first.wait_for(timeout=30000)
    page.screenshot(path=str(artifacts_dir / "demo_metrics_tab.png"), full_page=True)
    assert (artifacts_dir / "demo_metrics_tab.png").stat().st_size > 10000


def test_splat_tab_trains_the_bundled_scene_and_orbits(hub_url, page, artifacts_dir):
    page.goto(hub_url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Gaussian splatting").click()
    steps = page.locator("#splat-iterations input[type=number]")
    steps.fill("20")
    steps.press("Enter")
    page.locator("#splat-train").click()
    status = page.locator("#splat-status")
    status.get_by_text("step 10/20").wait_for(timeout=120000)  # live progress while the run goes on
    page.locator("#splat-preview img").first.wait_for(timeout=30000)
    status.get_by_text("done: 20 steps").wait_for(timeout=180000)
    assert "psnr" in page.locator("#splat-metrics").inner_text()
    view = page.locator("#splat-orbit-view img").first
    view.wait_for(timeout=60000)
    first = view.get_attribute("src")
    angle = page.locator("#splat-orbit input[type=number]")
    angle.fill("120")
    angle.press("Enter")
    page.wait_for_function("([sel, old]) => { const img = document.querySelector(sel); return img && img.src !== old; }", arg=["#splat-orbit-view img", first], timeout=60000)
    page.wait_for_timeout(1500)  # let the pending overlay fade before the screenshot
    page.screenshot(path=str(artifacts_dir / "demo_splat_tab.png"), full_page=True)
    assert (artifacts_dir / "demo_splat_tab.png").stat().st_size > 10000


def test_sr_tab_compares_models_in_a_real_browser(hub_url, page, tmp_path, artifacts_dir):
    import skimage.data

    from mnemovision.sr.api import SHIPPED

    if not all(p.exists() for p in SHIPPED.values()):
        pytest.skip("shipped SR models missing (bench/sr.py --ship writes them)")
    write_image(tmp_path / "reference.png", skimage.data.astronaut()[100:292, 150:342])
    page.goto(hub_url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Super-resolution").click()
    page.locator("#sr-reference input[type=file]").set_input_files(str(tmp_path / "reference.png"))
    page.locator("#sr-reference img").first.wait_for(timeout=30000)
    page.locator("#sr-run").click()
    table = page.locator("#sr-table")
    table.get_by_text("PSNR-Y").wait_for(timeout=120000)
    text = table.inner_text()
    assert "bicubic" in text and "iss-p" in text
    assert page.locator("#sr-gallery img").count() >= 3
    page.screenshot(path=str(artifacts_dir / "demo_sr_tab.png"), full_page=True)


def test_vos_tab_paints_and_propagates_in_a_real_browser(hub_url, page, artifacts_dir):
    page.goto(hub_url, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Video segmentation").click()
    page.locator("#vos-load").click()
    page.locator("#vos-status").get_by_text("24 frames").wait_for(timeout=60000)
    canvas = page.locator("#vos-editor canvas").first
    canvas.wait_for(timeout=30000)
    brush = page.locator("#vos-editor").get_by_role("button", name=re.compile("brush|draw", re.I))
    if brush.count():
        brush.first.click()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.35)
    page.mouse.down()
    for i in range(1, 11):  # a short stroke across the object
        page.mouse.move(box["x"] + box["width"] * (0.45 + 0.015 * i), box["y"] + box["height"] * (0.35 + 0.01 * i))
    page.mouse.up()
    page.locator("#vos-run").click()
    page.locator("#vos-status").get_by_text("frames segmented").wait_for(timeout=120000)
    page.locator("#vos-result video").first.wait_for(timeout=60000)
    page.screenshot(path=str(artifacts_dir / "demo_vos_tab.png"), full_page=True)
    assert "masks" in page.locator("#vos-masks").inner_text(), page.locator("#vos-masks").inner_text()
