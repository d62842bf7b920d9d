"""What users see in JupyterLab, checked in a real browser (headless Chromium).

Starts JupyterLab on 127.0.0.1 with a token, opens a notebook, runs its cells
through the UI ("Run All Cells") and asserts on the rendered DOM, in the light
and in the dark theme. Screenshots land in the folder the test prints.

Runs in `make test` when Chromium, chromedriver, selenium and JupyterLab are
present, and always in CI (.ci/run installs them); elsewhere it is skipped with
the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(180)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _missing() -> str | None:
    if not CHROMIUM or not CHROMEDRIVER:
        return (
            "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        )
    for module in ("selenium", "jupyterlab", "ipywidgets"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[browser]')"
    return None


if _missing() and not os.environ.get("CI"):
    pytest.skip(_missing() or "", allow_module_level=True)

CELLS = [
    "%load_ext loopbridge\nimport asyncio, loopbridge",
    # tasks on the worker: a long name, an escaped one, a gather, plain sleepers
    "async def sleeper(n):\n    await asyncio.sleep(n)\n"
    "async def pipeline_stage_with_a_rather_long_name():\n"
    "    await asyncio.gather(sleeper(300), sleeper(300))\n"
    "async def make():\n"
    "    kept.append(asyncio.create_task(pipeline_stage_with_a_rather_long_name(),\n"
    "        name='an-extremely-long-task-name-that-someone-chose-for-ingest-worker-7'))\n"
    "    kept.append(asyncio.create_task(sleeper(300), name='<html>&'))\n"
    "    kept.append(asyncio.create_task(pipeline_stage_with_a_rather_long_name(),\n"
    "        name='where-me'))\n"
    "    await asyncio.sleep(0.05)\n"
    "kept = []\n"
    "loopbridge.run_sync(make())",
    "%aio tasks --loop worker",
    "%aio where where-me",
    "async def double(x):\n    await asyncio.sleep(0.01)\n    return 2 * x\n"
    "ok = loopbridge.map_sync(double, range(30), progress=True)",
    "async def fails_at_5(x):\n    await asyncio.sleep(0.01)\n    if x == 5:\n"
    "        raise ValueError('five')\n    return x\n"
    "try:\n    loopbridge.map_sync(fails_at_5, range(30), concurrency=1, progress=True)\n"
    "except ValueError:\n    pass\nprint('all cells ran')",
]


def _notebook() -> dict[str, Any]:
    return {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "source": src,
                "outputs": [],
                "execution_count": None,
            }
            for src in CELLS
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = (
        Path(os.environ.get("LOOPBRIDGE_ARTIFACTS", tempfile.gettempdir())) / "loopbridge-browser"
    )
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser screenshots: {folder}")
    return folder


def _lab(theme: str) -> Iterator[tuple[str, Path]]:
    root = Path(tempfile.mkdtemp(prefix="loopbridge-lab-"))
    (root / "browser.ipynb").write_text(json.dumps(_notebook()))
    settings = root / ".settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "themes.jupyterlab-settings").write_text(json.dumps({"theme": theme}))
    # every cell stays in the DOM (no virtual scrolling), so all outputs can be read
    notebook = root / ".settings" / "@jupyterlab" / "notebook-extension"
    notebook.mkdir(parents=True)
    (notebook / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    # no "get notified about Jupyter news?" toast over the outputs
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port, token = _free_port(), "loopbridge-browser-test"
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(root / ".settings")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--ServerApp.token={token}",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.user_settings_dir={root / '.settings'}",
            f"--LabApp.workspaces_dir={root / '.workspaces'}",
            "--ServerApp.disable_check_xsrf=True",
            "--allow-root",
            "--LabApp.expose_app_in_browser=True",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("JupyterLab did not start within 60 s")
        yield f"http://127.0.0.1:{port}/lab/tree/browser.ipynb?token={token}", root
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)


def _driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM or ""
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        "--disable-dev-shm-usage",
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER or ""), options=opts)


def _wait(driver: Any, script: str, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# The app's own command, as the "Run > Run All Cells" menu item runs it.
RUN_ALL = """
const app = window.jupyterapp;
if (!app || !app.shell.currentWidget || !app.shell.currentWidget.sessionContext) return false;
const ctx = app.shell.currentWidget.sessionContext;
if (!ctx.session || !ctx.session.kernel || ctx.session.kernel.status !== 'idle') return false;
app.commands.execute('notebook:run-all-cells');
return true;
"""

MEASURE = """
const table = document.querySelector('.jp-OutputArea-output table.loopbridge');
if (!table) return null;
const heads = [...table.querySelectorAll('thead th')].map(th => th.textContent.trim());
const col = name => heads.indexOf(name);
const rows = [...table.querySelectorAll('tbody tr')];
const oneLine = td => {
  const h = td.getBoundingClientRect().height;
  const lh = parseFloat(getComputedStyle(td).fontSize) * 2;
  return h < lh;
};
const keys = ['id', 'state', 'age', 'loop', 'cell'];
const wrapped = [];
for (const r of rows) {
  for (const k of keys) {
    const td = r.children[col(k)];
    if (td && !oneLine(td)) wrapped.push(k + ': ' + td.textContent);
  }
}
const area = table.closest('.jp-OutputArea-output');
const box = area.getBoundingClientRect();
const keyCols = ['id', 'name', 'loop', 'state', 'age', 'cell', 'waits on'];
const rightmost = Math.max(...keyCols.map(k =>
  table.querySelectorAll('thead th')[col(k)].getBoundingClientRect().right));
const texts = [...table.querySelectorAll('td')].map(td => td.textContent);
return {
  heads: heads,
  wrapped: wrapped,
  keyRight: rightmost,
  areaRight: box.right,
  areaLeft: box.left,
  scrollLeft: area.scrollLeft,
  escaped: texts.includes('<html>&'),
  injected: document.querySelectorAll('.jp-OutputArea-output table.loopbridge html').length,
  footer: table.querySelector('tfoot') ? table.querySelector('tfoot').textContent : null,
};
"""


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_notebook_views_in_a_real_browser(theme: str, artifacts: Path) -> None:
    reason = _missing()
    if reason:
        pytest.fail(f"CI must run the browser test: {reason}")
    slug = theme.split()[-1].lower()
    for url, _root in _lab(theme):
        driver = _driver()
        try:
            driver.get(url)
            _wait(
                driver,
                "return document.querySelector('.jp-Notebook .jp-Cell') !== null",
                60,
                "the notebook to open",
            )
            _wait(driver, RUN_ALL, 60, "the kernel to be idle, then Run All Cells")
            _wait(
                driver,
                "return document.body.innerText.includes('all cells ran')",
                90,
                "every cell to run",
            )
            time.sleep(1)
            driver.save_screenshot(str(artifacts / f"notebook-{slug}.png"))
            light = driver.execute_script(
                "return document.body.getAttribute('data-jp-theme-light')"
            )
            assert light == ("true" if slug == "light" else "false"), light
            m = driver.execute_script(MEASURE)
            assert m is not None, "no %aio tasks table was rendered"
            assert m["heads"][:6] == ["id", "name", "loop", "state", "age", "cell"], m
            # the key columns, "waits on" included, are in view at 1,280 px with the file
            # browser open, without scrolling the output sideways
            assert m["scrollLeft"] == 0 and m["keyRight"] <= m["areaRight"], m
            assert not m["wrapped"], m  # ids, states, ages, loops, cells on one line
            assert m["escaped"] and m["injected"] == 0, m  # escaped, shown as text
            assert m["footer"] and "task(s)" in m["footer"], m  # the footer is in the table
            # %aio where: the chain expands on click
            opened = driver.execute_script(
                """
                const all = [...document.querySelectorAll('.jp-OutputArea-output details')];
                const closed = all.find(d => !d.open);
                const target = closed || all[0];
                if (!target) return null;
                const before = target.open;
                target.querySelector('summary').click();
                return [before, target.open];
                """
            )
            assert opened is not None and opened[0] != opened[1], opened
            # map_sync(progress=True): one bar at 100%, one red after the error
            bars = _wait(
                driver,
                """
                const bars = [...document.querySelectorAll('.widget-hprogress .progress-bar')];
                if (bars.length < 2) return null;
                return bars.map(b => [b.style.width || getComputedStyle(b).width,
                                      b.className]);
                """,
                30,
                "two progress bars: "
                + str(
                    driver.execute_script(
                        "return [...document.querySelectorAll('[class*=progress]')]"
                        ".map(e => e.className).slice(0, 12)"
                    )
                ),
            )
            assert bars[0][0] == "100%", bars
            assert "danger" in bars[1][1], bars  # tqdm marks a failed run's bar red
            driver.save_screenshot(str(artifacts / f"after-click-{slug}.png"))
        finally:
            driver.quit()
