"""The service's page in a real headless browser: Debian's chromium and chromium-driver, driven by selenium (no
browser download). Without them the tests skip, except under CI (CI=true), which installs them, where they fail."""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import pytest

from helpers import save_tiny_model
from mtl.predictor import Predictor
from mtl.serving import create_app
from serve import bind

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# a closed network: everything that would phone home is off, and a fresh profile each run
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1000,900"]
TEXTS = ["华为发布新款折叠屏手机", "国足今晚迎战日本队，首发阵容公布"]
PAIRS = [["他来了", "他没来"], ["一月份跟二月份肯定有一个月份有.", "一月份有"]]

pytestmark = pytest.mark.slow  # a browser starts: about 2 s, and the page's requests


def require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        message = f"{', '.join(missing)} not installed (apt-get install -y chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI installs them, so the page would go untested")
        pytest.skip(message)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    require_browser()
    return Predictor.from_pretrained(str(save_tiny_model(tmp_path_factory.mktemp("serve_page") / "model")), device="cpu")


@pytest.fixture(scope="module")
def url(predictor):
    """The service on a free port of 127.0.0.1, in a thread of this process."""
    import uvicorn

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(predictor), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(url):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def label(browser, task: str, typed: str) -> tuple[list[str], str]:
    """Open the page, pick the task, type the texts, press Label: (the best label of each text, the error shown)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(browser.page_url)
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    Select(browser.find_element(By.ID, "task")).select_by_visible_text(task)
    browser.find_element(By.ID, "texts").send_keys(typed)
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "results").get_attribute("data-count")
                                     or b.find_element(By.ID, "error").text)
    best = browser.find_elements(By.CSS_SELECTOR, ".score.best .label-name")
    return [b.get_attribute("data-label") for b in best], browser.find_element(By.ID, "error").text


@pytest.fixture
def page(browser, url):
    browser.page_url = url
    return browser


def test_the_page_labels_two_tnews_texts_as_the_predictor_does(page, predictor):
    from selenium.webdriver.common.by import By

    labels, error = label(page, "tnews", "\n".join(TEXTS))
    assert error == ""
    assert labels == [p.label for p in predictor.predict("tnews", TEXTS)]
    shown = [e.text for e in page.find_elements(By.CSS_SELECTOR, ".score.best .label-name")]
    assert shown == [f"{p.label_name} ({p.label})" for p in predictor.predict("tnews", TEXTS)]
    widths = [e.get_attribute("style") for e in page.find_elements(By.CSS_SELECTOR, ".score.best .bar")]
    assert all(w.startswith("width:") and "%" in w for w in widths) and len(widths) == 2


def test_a_pair_typed_with_tab_and_a_line_that_is_no_pair(page, predictor):
    from selenium.webdriver.common.keys import Keys

    typed = "\n".join(f"{a}{Keys.TAB}{b}" for a, b in PAIRS)  # Tab in the box separates, it does not move on
    labels, error = label(page, "ocnli", typed)
    assert error == "" and labels == [p.label for p in predictor.predict("ocnli", PAIRS)]
    labels, error = label(page, "ocnli", f"他来了{Keys.TAB}他没来\n只有一句")
    assert error.startswith("Line 2: ocnli reads premise and hypothesis separated by a Tab") and labels == []
