"""The Space in a real browser: `python app.py` served on 127.0.0.1, clicked through in headless Chromium.

Needs Debian's `chromium` (/usr/bin/chromium; `.ci/run` installs it) and the `playwright`
Python package; Playwright's own browser download is never used.

Set GENHUB_SCREENSHOT_DIR=docs/app and GENHUB_WEIGHTS_DIR=weights to refresh the README's
screenshots of the bundled models; by default the test serves two small models it saves
itself and writes its screenshots to a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from genhub import GenDCGAN, GenVAE
from genhub.space.serve import running_app

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    weights = os.environ.get("GENHUB_WEIGHTS_DIR")
    if not weights:
        folder = tmp_path_factory.mktemp("weights")
        torch.manual_seed(0)
        # Sorted first, so the page opens on a VAE: the Reconstruct tab starts visible.
        GenVAE(latent_dim=8, hidden_dims=(64,)).save_pretrained(folder / "a-vae")
        GenDCGAN(image_shape=(3, 32, 32), latent_dim=6, width=8).save_pretrained(folder / "b-gan")
        pixelcnn = GenVAE(image_shape=(1, 28, 28), latent_dim=4, architecture="conv", width=8, pixelcnn_layers=1)
        pixelcnn.save_pretrained(folder / "c-pixelcnn")
        weights = str(folder)
    with running_app(weights, timeout=90) as app:
        yield app.url


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(app_url)
        yield page
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("GENHUB_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def image_source(page, selector: str) -> str:
    return page.locator(f"{selector} img").first.get_attribute("src") or ""


def wait_for_new_image(page, selector: str, old: str = "") -> str:
    """Wait until the output `selector` shows an image that has loaded and differs from `old`."""
    page.wait_for_function(
        """([selector, old]) => {
            const img = document.querySelector(selector + ' img');
            return img && img.complete && img.naturalWidth > 0 && img.getAttribute('src') !== old;
        }""",
        arg=[selector, old],
    )
    return image_source(page, selector)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def shoot(page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_each_tab_shows_images(page, screenshots, tmp_path):
    # Sample: the page draws a grid on load; the button draws another seed's grid.
    first = wait_for_new_image(page, "#sample-image")
    page.locator("#sample-image").scroll_into_view_if_needed()
    page.get_by_label("Seed").first.fill("7")
    page.locator("#sample-button").click()
    wait_for_new_image(page, "#sample-image", first)
    shoot(page, screenshots, "sample")

    # Latent sliders: dragging z[0] (set through its range input) redraws the image.
    open_tab(page, "Latent sliders")
    before = wait_for_new_image(page, "#slider-image")
    page.locator("#z0 input[type=range]").fill("3.5")
    wait_for_new_image(page, "#slider-image", before)
    shoot(page, screenshots, "sliders")

    # Interpolate between two seeds: a strip and an animated GIF.
    open_tab(page, "Interpolate")
    page.locator("#interpolate-seeds").click()
    wait_for_new_image(page, "#strip")
    wait_for_new_image(page, "#gif")
    shoot(page, screenshots, "interpolate")

    # Explore: the perturbation grid.
    open_tab(page, "Explore")
    page.locator("#explore-button").click()
    wait_for_new_image(page, "#explore-image")
    shoot(page, screenshots, "explore")

    # Reconstruct: draw a stroke on the sketchpad with the mouse, as a person would.
    select_vae(page)
    open_tab(page, "Reconstruct")
    draw_digit(page, tmp_path)
    page.locator("#reconstruct-button").click()
    wait_for_new_image(page, "#reconstruction")
    shoot(page, screenshots, "reconstruct")


def select_vae(page) -> None:
    """Pick a model whose name says VAE (the bundled VAE when serving weights/)."""
    dropdown = page.locator("#model input")
    if "vae" in dropdown.input_value().lower():
        return
    dropdown.click()
    page.get_by_role("option").filter(has_text="vae").first.click()
    page.wait_for_function("() => document.querySelector('#model-info').innerText.includes('VAE')")


def draw_digit(page, tmp_path: Path) -> None:
    sketch = page.locator("#sketch")
    # The sketchpad re-renders when a model switch shows it; drawing during that re-render
    # loses the stroke (and Gradio logs a JavaScript error), so let it settle first.
    sketch.wait_for(state="visible")
    page.wait_for_timeout(1000)
    brush = sketch.get_by_role("button", name="Brush")
    if brush.count():
        brush.first.click()
        canvas = sketch.locator("canvas").first
        box = canvas.bounding_box()
        x, top, bottom = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.25, box["y"] + box["height"] * 0.75
        page.mouse.move(x, top)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(x, top + (bottom - top) * step / 10)
        page.mouse.up()
    else:  # no brush button in this Gradio build: upload a drawing instead
        path = tmp_path / "one.png"
        image = Image.new("RGB", (280, 280), "white")
        ImageDraw.Draw(image).line([(140, 60), (140, 220)], fill="black", width=24)
        image.save(path)
        sketch.locator("input[type=file]").set_input_files(str(path))


def tab_shown(page, tab_id: str) -> bool:
    return page.locator(f'button[role="tab"][data-tab-id="{tab_id}"]').first.is_visible()


def choose_model(page, name: str) -> None:
    page.locator("#model input").click()
    page.get_by_role("option").filter(has_text=name).first.click()
    page.wait_for_function("(name) => document.querySelector('#model-info').innerText.includes(name)", arg=name)


def test_only_the_tabs_that_apply_are_shown(page, app_url, screenshots):
    """Invert needs a decoder it can differentiate (a PixelCNN VAE draws pixel by pixel), and
    Neighbours a shipped index (the bundled models have one, test models none)."""
    page.goto(app_url)
    bundled = bool(os.environ.get("GENHUB_WEIGHTS_DIR"))
    choose_model(page, "b-gan" if not bundled else "dcgan-mnist")
    page.wait_for_timeout(500)
    assert tab_shown(page, "invert") and tab_shown(page, "directions") and tab_shown(page, "sample")
    assert tab_shown(page, "neighbours") is bundled
    if bundled:  # the bundled models ship neighbour indexes: one click of the memorisation view
        open_tab(page, "Neighbours")
        page.locator("#neighbours-button").click()
        wait_for_new_image(page, "#neighbour-image")
        page.wait_for_function("() => document.querySelector('#neighbour-note').innerText.includes('held-out')")
        shoot(page, screenshots, "neighbours")
        return
    choose_model(page, "c-pixelcnn")
    page.wait_for_function("() => !document.querySelector('button[role=tab][data-tab-id=invert]').checkVisibility()")
    assert not tab_shown(page, "invert") and tab_shown(page, "reconstruct")
    open_tab(page, "Reconstruct")  # a PixelCNN VAE still reconstructs: through its encoder
    choose_model(page, "b-gan")
    page.wait_for_function("() => document.querySelector('button[role=tab][data-tab-id=invert]').checkVisibility()")


def test_compare_a_direction_slider_and_invert_in_the_browser(page, app_url, screenshots, tmp_path):
    """One click each of the new tabs, as a person would: Compare, a direction slider, Invert."""
    page.goto(app_url)
    select_vae(page)  # the served VAE's decoder has a linear first layer: SeFa applies

    open_tab(page, "Compare")
    page.locator("#compare-button").click()
    wait_for_new_image(page, "#compare-image-a")
    wait_for_new_image(page, "#compare-image-b")
    page.locator("#compare-table").wait_for(state="visible")
    shoot(page, screenshots, "compare")

    open_tab(page, "Directions")
    page.locator("#direction-amount input[type=range]").fill("2.5")
    wait_for_new_image(page, "#direction-image")
    page.locator("#direction-grid-button").click()
    wait_for_new_image(page, "#direction-grid")
    shoot(page, screenshots, "directions-tab")

    open_tab(page, "Invert")
    path = tmp_path / "digit.png"
    image = Image.new("RGB", (280, 280), "white")
    ImageDraw.Draw(image).line([(140, 60), (150, 220)], fill="black", width=24)
    image.save(path)
    page.locator("#invert-input input[type=file]").set_input_files(str(path))
    page.wait_for_timeout(500)
    page.locator("#invert-button").click()
    wait_for_new_image(page, "#invert-output")
    page.wait_for_function("() => document.querySelector('#invert-loss').innerText.includes('pixel MSE')")
    shoot(page, screenshots, "invert")
