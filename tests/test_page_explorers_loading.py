"""The page is light: before any click it loads at most PAGE_AT_LOAD bytes, and no explorer's data or decoding;
an explorer's data script is added when the reader nears it, and a link into an explorer lands on its plane.

These count work (files fetched, scripts run, decoder passes: window.vaeExplorer.stats()), never time.
"""

from pathlib import Path

import pytest
from test_page import OpenPage, browser  # noqa: F401 (browser is a fixture)

PAGE_AT_LOAD = 600_000  # bytes the page may fetch before any click: index.html and what it loads at once
SIZES = {1280: dict(viewport={"width": 1280, "height": 900}),
         390: dict(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)}
UNFOLDED = ("2d", "3d", "correlated")


def settle(page):
    """Wait until the page has loaded and painted twice, and every image it fetched at once is complete."""
    page.wait_for_load_state("load")
    page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    page.wait_for_function("Array.from(document.images).every(img => img.complete || img.loading === 'lazy')")


def stats(page):
    return page.evaluate("window.vaeExplorer.stats()")


def box(page, selector):
    return page.evaluate("s => { const r = document.querySelector(s).getBoundingClientRect(); "
                         "return {top: r.top, bottom: r.bottom, height: r.height, width: r.width}; }", selector)


@pytest.mark.parametrize("width", SIZES)
def test_before_any_click_the_page_is_light_and_decodes_nothing(browser, committed_root, width):  # noqa: F811
    opened = OpenPage(browser, committed_root, **SIZES[width])
    try:
        settle(opened.page)
        files = set(opened.loaded)
        total = sum(Path(url.removeprefix("file://")).stat().st_size for url in files)
        assert total <= PAGE_AT_LOAD, f"{total:,} bytes before any click: {sorted(files)}"
        assert not [url for url in files if "/assets/explorer/" in url], sorted(files)
        assert stats(opened.page) == {"scripts": [], "executed": [], "encoders": [], "started": [], "decodes": 0, "encodes": 0}
        images = opened.page.evaluate("Array.from(document.images).map(img => img.loading)")
        assert images and set(images) == {"lazy"}
        assert opened.errors == [] and opened.blocked == []
    finally:
        opened.close()


def test_an_explorer_loads_when_the_reader_nears_it_and_keeps_its_size(browser, committed_root):  # noqa: F811
    """Scrolled to within a screen of the 2-D explorer, its script (only) is added, it starts and decodes its first
    digit; its box has the same size before and after."""
    opened = OpenPage(browser, committed_root, **SIZES[1280])
    page = opened.page
    try:
        settle(page)
        before = box(page, "#explorer-2d")
        assert before["height"] > before["width"] / 2, "the explorer's box is laid out before its data load"
        top = page.evaluate("document.querySelector('#explorer-2d').getBoundingClientRect().top + scrollY")
        page.evaluate(f"window.scrollTo(0, {top - 1.5 * 900})")  # half a screen below the viewport
        page.wait_for_function("window.vaeExplorer.models().includes('2d')", timeout=20_000)
        done = stats(page)
        assert done["scripts"] == ["2d"] and done["executed"] == ["2d"] and done["started"] == ["2d"]
        assert done["decodes"] == 1, "starting decodes the first digit, once"
        assert box(page, "#explorer-2d")["height"] == before["height"]
        assert [url for url in opened.loaded if "/assets/explorer/" in url] == [
            (committed_root / "assets/explorer/2d.js").as_uri()]
        assert opened.errors == []
    finally:
        opened.close()


def test_focus_on_an_explorer_loads_it(browser, committed_root):  # noqa: F811
    """A keyboard reader who tabs into an explorer loads it (here: its first button, focused from the top)."""
    opened = OpenPage(browser, committed_root, **SIZES[1280])
    try:
        settle(opened.page)
        opened.page.locator("#explorer-correlated .explorer-sample").focus()
        opened.page.wait_for_function("window.vaeExplorer.models().includes('correlated')", timeout=20_000)
        assert "correlated" in stats(opened.page)["scripts"]
        assert opened.errors == []
    finally:
        opened.close()


@pytest.mark.parametrize("width", SIZES)
def test_a_link_into_the_explorer_lands_with_the_plane_in_view(browser, committed_root, width):  # noqa: F811
    """A link "try it in the 2-D explorer" (href="#explorer-2d") jumps to the explorer, which then loads: its
    plane is wholly inside the viewport once it has started, the box never having changed size."""
    opened = OpenPage(browser, committed_root, **SIZES[width])
    page = opened.page
    try:
        settle(page)
        before = box(page, "#explorer-2d")
        link = page.locator('main a[href="#explorer-2d"]').first
        link.scroll_into_view_if_needed()
        link.click()
        page.wait_for_function("window.vaeExplorer.models().includes('2d')", timeout=20_000)
        settle(page)
        plane = box(page, "#explorer-2d .explorer-plane")
        height = page.evaluate("innerHeight")
        assert 0 <= plane["top"] and plane["bottom"] <= height, (plane, height)
        assert box(page, "#explorer-2d")["height"] == before["height"]
        assert opened.errors == []
    finally:
        opened.close()
