"""Notebook 04 in a real JupyterLab, in a real headless Chromium driven by selenium.

Skipped with a reason where Chromium or chromedriver is missing (.ci/run installs them).
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a copy of the notebooks; yields (port, token)."""
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    port, token = _free_port(), "irn-test-token"
    env = dict(os.environ, IRN_RESULTS=str(tmp_path / "results"))
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={tmp_path / 'notebooks'}",
        "--expose-app-in-browser",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "lab.log").read_text()
                time.sleep(0.5)
        yield port, token
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1600,1200",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


SR_PANEL = ".irn-panel-irn_sr img, img.irn-panel-irn_sr"  # the IRN reconstruction

KERNEL_IDLE = """
const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
return !!k && k.status === 'idle';
"""


def test_explorer_renders_and_the_temperature_slider_changes_the_reconstruction(lab, browser, tmp_path):
    port, token = lab
    # The widget replaces its output when the view changes: an element read at that moment is
    # stale, and the wait reads it again (as it does while the element does not exist yet).
    wait = WebDriverWait(browser, 240, ignored_exceptions=(StaleElementReferenceException,))
    browser.get(f"http://127.0.0.1:{port}/lab/tree/04_explore.ipynb?token={token}")
    try:
        wait.until(lambda d: d.execute_script(KERNEL_IDLE))
        browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        psnr = lambda d: d.find_element(By.CSS_SELECTOR, ".irn-metrics .irn-psnr").text  # noqa: E731
        shown = lambda d: d.find_element(By.CSS_SELECTOR, SR_PANEL).get_attribute("src")  # noqa: E731
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".irn-metrics .irn-psnr") and psnr(d))
        assert float(psnr(browser)) > 0
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, SR_PANEL) and shown(d))
        before = shown(browser)
        handle = browser.find_element(By.CSS_SELECTOR, ".irn-temperature .noUi-handle")
        handle.click()
        # temperature 1.0 -> 0.0 (ten steps of 0.1): z = 0, another reconstruction, sent as a new image.
        # Its PSNR need not move in the two decimals shown: the x4 reference grown from the x2 upscales
        # about as well from z = 0 as from the draw (embedded astronaut, 256 px: 29.576 -> 29.583 dB).
        handle.send_keys(*[Keys.ARROW_LEFT] * 10)
        wait.until(lambda d: shown(d) != before)
        assert float(psnr(browser)) > 0
    finally:
        browser.save_screenshot(str(tmp_path / "jupyterlab.png"))
