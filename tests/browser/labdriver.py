"""JupyterLab in a real browser: the server, the page, and checkers over what the page renders.

The checkers are plain functions over a *snapshot* of an open notebook (one dict per cell: the
notebook model's source, tags, outputs and execution count, plus what the DOM shows of its outputs),
so the test that breaks notebooks on purpose can assert they report each failure.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _figure_call() -> str:
    """FIGURE_CALL of tests/conftest.py, the same regex the headless smoke tests use (read from the file,
    so it does not matter which module ``conftest`` names in sys.modules)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_autoif_tests_conftest", ROOT / "tests" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.FIGURE_CALL


CHROMIUM = os.environ.get("AUTOIF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FIGURE_CALL = _figure_call()
SCREENSHOTS = ROOT / "outputs" / "browser"
WIDGET_ERROR = "Error displaying widget"
_RECORD_AT = re.compile(r"record (\d+) of (\d+)")


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """``jupyter lab`` on a free port with a random token, serving ``root_dir``; settings and runtime
    files in ``home`` so the user's own Jupyter config cannot change what the tests see."""

    def __init__(self, root_dir: Path, home: Path):
        self.root_dir, self.home = Path(root_dir), Path(home)
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        settings = self.home / "settings"
        # windowingMode none: every cell stays in the DOM (the checks read all of them, the screenshot shows all)
        _write_json(settings / "@jupyterlab/notebook-extension/tracker.jupyterlab-settings", {"windowingMode": "none"})
        _write_json(settings / "@jupyterlab/apputils-extension/notification.jupyterlab-settings",
                    {"fetchNews": "false", "checkForUpdates": False})
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(self.home / "config"),
                   JUPYTER_RUNTIME_DIR=str(self.home / "runtime"), TOKENIZERS_PARALLELISM="false",
                   HF_HUB_OFFLINE="1", TRL_EXPERIMENTAL_SILENCE="1", PYTHONUNBUFFERED="1")
        self.log_path = self.home / "jupyterlab.log"
        self._log = open(self.log_path, "w")
        jupyter = Path(sys.executable).with_name("jupyter")
        self.proc = subprocess.Popen(
            [str(jupyter), "lab", "--no-browser", f"--port={self.port}", "--ServerApp.ip=127.0.0.1",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
             "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: the notebook model, for the checks
             f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={self.home / 'workspaces'}",
             "--ServerApp.open_browser=False", "--LabApp.extension_manager=readonly",  # no PyPI look-ups
             *(["--allow-root"] if os.geteuid() == 0 else [])],
            cwd=str(self.root_dir), env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 90) -> None:
        import httpx

        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                r = httpx.get(f"{self.url}/api/status", headers={"Authorization": f"token {self.token}"}, timeout=2)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"jupyter lab not answering /api/status after {timeout:.0f} s:\n{self.log_tail()}")

    def shutdown_kernels(self) -> None:
        import httpx

        h = {"Authorization": f"token {self.token}"}
        for k in httpx.get(f"{self.url}/api/kernels", headers=h, timeout=10).json():
            httpx.delete(f"{self.url}/api/kernels/{k['id']}", headers=h, timeout=30)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # the server shuts its kernels down
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def missing_browser_tools() -> list[str]:
    """What this suite needs and does not find (empty: all there)."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the python package playwright (`.venv/bin/pip install -e '.[dev]'`)")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"Chromium at {CHROMIUM} (`make browser-deps`, i.e. `apt-get install -y chromium`)")
    return missing


# --------------------------------------------------------------------------- page


def open_notebook(page, lab: Lab, rel_path: str, timeout_s: float = 120) -> None:
    """Open a notebook of the lab's root in the page's JupyterLab and wait until its kernel is ready. The
    first call loads JupyterLab at the notebook's URL; later ones close every tab and open the next notebook
    in the same page (File > Open, by its command), which spares a reload of JupyterLab per notebook."""
    if page.evaluate("() => !!(window.jupyterapp && window.jupyterapp.shell)"):
        close_all(page)
        page.evaluate("(path) => window.jupyterapp.commands.execute('docmanager:open', {path})", rel_path)
    else:
        page.goto(f"{lab.url}/lab/tree/{rel_path}?reset&token={lab.token}")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=timeout_s * 1000)
    page.wait_for_function(
        """(path) => { const w = window.jupyterapp.shell.currentWidget;
                       return w && w.context && w.context.path === path && w.content && w.content.widgets
                              && w.content.widgets.length > 0 && w.context.isReady; }""",
        arg=rel_path, timeout=timeout_s * 1000)


def close_all(page) -> None:
    """Close every tab without the save dialog (the notebooks are scratch copies)."""
    page.evaluate("""async () => { const app = window.jupyterapp; if (!app) return;
        for (const w of app.shell.widgets('main')) { if (w.context && w.context.model) w.context.model.dirty = false; }
        await app.commands.execute('application:close-all'); }""")


def wait_kernel_idle(page, timeout_s: float = 180) -> None:
    page.wait_for_function(
        """() => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel;
                   return k && k.status === 'idle'; }""", timeout=timeout_s * 1000, polling=250)


def run_all_cells(page, timeout_s: float) -> float:
    """Run > Run All Cells from the menu bar; wait until no cell is queued or running and the kernel is
    idle (a failing cell stops the queue; the checks then find its error). Returns the seconds it took."""
    wait_kernel_idle(page)
    page.evaluate("() => { window.__autoifIdleSince = null; }")
    t0 = time.time()
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
    page.wait_for_function("() => document.querySelectorAll('.jp-InputPrompt').length > 0")
    # settled: kernel idle, no '[*]' prompt, for 1 s running
    page.wait_for_function(
        """() => { const w = window.jupyterapp.shell.currentWidget;
                   const k = w.sessionContext.session?.kernel;
                   const busy = !k || k.status !== 'idle' || [...w.node.querySelectorAll('.jp-InputPrompt')]
                                  .some(p => p.textContent.includes('*'));
                   const now = Date.now();
                   if (busy) { window.__autoifIdleSince = null; return false; }
                   window.__autoifIdleSince = window.__autoifIdleSince || now;
                   return now - window.__autoifIdleSince > 1000; }""",
        timeout=timeout_s * 1000, polling=250)
    return time.time() - t0


_SNAPSHOT_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const json = w.content.model.toJSON();
  const text = s => Array.isArray(s) ? s.join('') : (s || '');
  return w.content.widgets.map((cell, i) => {
    const c = json.cells[i];
    cell.node.setAttribute('data-autoif-cell', String(i));  // for locators: cell i of this snapshot
    const area = cell.node.querySelector('.jp-OutputArea');
    return {
      index: i, type: c.cell_type, source: text(c.source), tags: (c.metadata && c.metadata.tags) || [],
      execution_count: c.execution_count === undefined ? null : c.execution_count,
      model_outputs: (c.outputs || []).map(o => ({output_type: o.output_type, ename: o.ename || null,
                                                  evalue: o.evalue || null, name: o.name || null,
                                                  mimes: Object.keys(o.data || {})})),
      dom_outputs: area ? [...area.querySelectorAll('.jp-OutputArea-output')].map(o => ({
          mime: o.getAttribute('data-mime-type'), text: (o.innerText || '').slice(0, 3000),
          imgs: o.querySelectorAll('img').length})) : [],
      imgs: area ? area.querySelectorAll('img').length : 0,
      widget_views: area ? area.querySelectorAll('.jp-OutputArea-output .widget-vbox').length : 0,
      output_text: area ? (area.innerText || '').slice(0, 5000) : '',
    };
  });
}"""


def snapshot(page) -> list[dict]:
    """Every cell of the open notebook: model (source, tags, outputs) and rendered outputs."""
    return page.evaluate(_SNAPSHOT_JS)


# --------------------------------------------------------------------------- checkers (pure)


def _label(cell: dict) -> str:
    first = next((ln for ln in cell["source"].splitlines() if ln.strip()), "")
    return f"cell {cell['index']} ({first[:70]!r})"


def check_parameters_cell(cells: list[dict]) -> list[str]:
    code = [c for c in cells if c["type"] == "code"]
    if not code:
        return ["no code cell at all"]
    if "parameters" not in code[0]["tags"]:
        return [f"the first code cell, {_label(code[0])}, is not tagged `parameters` (tags: {code[0]['tags']})"]
    return []


def check_errors(cells: list[dict]) -> list[str]:
    """Error outputs in the model, tracebacks on stderr, and widget error boxes in the page."""
    bad = []
    for c in cells:
        for o in c["model_outputs"]:
            if o["output_type"] == "error":
                bad.append(f"{_label(c)} raised {o['ename']}: {(o['evalue'] or '')[:300]}")
        for o in c["dom_outputs"]:
            if o["mime"] == "application/vnd.jupyter.stderr" and "Traceback (most recent call last)" in o["text"] \
                    and not any(m["output_type"] == "error" for m in c["model_outputs"]):
                bad.append(f"{_label(c)} printed a traceback on stderr: {o['text'][-300:]!r}")
        if WIDGET_ERROR in c["output_text"]:
            line = next(ln for ln in c["output_text"].splitlines() if WIDGET_ERROR in ln)
            bad.append(f"{_label(c)} shows {line.strip()!r}")
    return bad


# A tqdm bar's visible text at 0 of a positive total ("probe: 0%|          | 0/60"): in a notebook whose cells
# ran, that is a bar frozen at its first state (a saved widget's text fallback), not a loop that did nothing.
_FROZEN_BAR = re.compile(r"(?<![\d.])0%\|[^|\n]*\|\s*0/([1-9]\d*)")


def check_progress(cells: list[dict]) -> list[str]:
    """Every progress bar shows where its loop ended: none reads 0% of a non-empty total."""
    bad = []
    for c in cells:
        for line in c["output_text"].splitlines():
            if _FROZEN_BAR.search(line):
                bad.append(f"{_label(c)} shows a progress bar frozen at 0%: {line.strip()[:120]!r}")
    return bad


def check_executed(cells: list[dict]) -> list[str]:
    """After Run All: every code cell ran (a cell left unrun means the queue stopped before it)."""
    return [f"{_label(c)} never ran" for c in cells
            if c["type"] == "code" and c["source"].strip() and c["execution_count"] is None]


def figure_cells(cells: list[dict]) -> list[dict]:
    return [c for c in cells if c["type"] == "code" and re.search(FIGURE_CALL, c["source"])]


def check_figures(cells: list[dict]) -> list[str]:
    """Every cell that calls a plotting function shows exactly one rendered <img>."""
    return [f"{_label(c)} is a figure cell and shows {c['imgs']} rendered images, not 1"
            for c in figure_cells(cells) if c["imgs"] != 1]


def browser_cells(cells: list[dict]) -> list[dict]:
    return [c for c in cells if c["type"] == "code" and "RecordBrowser(" in c["source"]]


def check_browsers_rendered(cells: list[dict]) -> list[str]:
    """Each RecordBrowser cell shows the live widget with its first record."""
    bad = []
    for c in browser_cells(cells):
        if WIDGET_ERROR in c["output_text"]:
            continue  # check_errors reports it
        if c["widget_views"] < 1:
            bad.append(f"{_label(c)}: no RecordBrowser widget rendered (outputs: "
                       f"{[o['mime'] for o in c['dom_outputs']]})")
        elif not _RECORD_AT.search(c["output_text"]) and "no records" not in c["output_text"]:
            bad.append(f"{_label(c)}: the RecordBrowser widget shows no record: {c['output_text'][:200]!r}")
    return bad


def static_problems(cells: list[dict], ran: bool) -> list[str]:
    return (check_parameters_cell(cells) + check_errors(cells) + (check_executed(cells) if ran else [])
            + check_figures(cells) + check_browsers_rendered(cells) + check_progress(cells))


# --------------------------------------------------------------------------- widgets (page)


def exercise_record_browsers(page, cells: list[dict]) -> tuple[list[str], list[str]]:
    """Click Next then Prev in every rendered RecordBrowser; the record shown must change each time.
    Returns (problems, notes); a browser of one record cannot move, which is a note, not a failure."""
    problems, notes = [], []
    for c in browser_cells(cells):
        if c["widget_views"] < 1:
            continue  # check_browsers_rendered reports it
        area = page.locator(f'[data-autoif-cell="{c["index"]}"] .jp-OutputArea-output .widget-vbox').first
        rec = area.locator(".widget-html-content", has_text=_RECORD_AT).first
        nxt = area.locator("button", has_text="Next").first
        prv = area.locator("button", has_text="Prev").first
        try:
            shown = rec.inner_text(timeout=10_000)
        except Exception:  # noqa: BLE001 - reported as a problem with the cell
            if "no records" in c["output_text"]:
                notes.append(f"{_label(c)}: RecordBrowser has no records")
            else:
                problems.append(f"{_label(c)}: RecordBrowser shows no 'record i of n' line")
            continue
        m = _RECORD_AT.search(shown)
        if m.group(1) != "1":
            problems.append(f"{_label(c)}: RecordBrowser opens on record {m.group(1)}, not the first")
        total = int(m.group(2))
        if total < 2:
            notes.append(f"{_label(c)}: RecordBrowser holds {total} record; Next/Prev cannot move"
                         + ("" if nxt.is_disabled() else " (and Next is not disabled)"))
            continue
        for button, want in ((nxt, "2"), (prv, "1")):
            button.click()
            try:
                page.wait_for_function(
                    "([el, want]) => { const m = el.innerText.match(/record (\\d+) of/); return m && m[1] === want; }",
                    arg=[rec.element_handle(), want], timeout=10_000)
            except Exception:  # noqa: BLE001
                now = _RECORD_AT.search(rec.inner_text())
                problems.append(f"{_label(c)}: clicking {button.inner_text().strip()!r} shows record "
                                f"{now.group(1) if now else '?'}, not {want}")
                break
    return problems, notes


def screenshot(page, name: str) -> Path:
    """Full-page screenshot of the open notebook (the viewport is stretched to the notebook's height)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    size = page.viewport_size
    # the notebook scrolls inside its panel: a viewport as tall as its content shows all of it
    height = page.evaluate("""() => { const w = window.jupyterapp.shell.currentWidget;
        if (!w || !w.content) return 0;
        const n = w.content.node;
        return Math.max(n.scrollHeight, ...[...n.querySelectorAll('.jp-WindowedPanel-outer')].map(e => e.scrollHeight)); }""")
    height = max(int(height or 0) + 300, size["height"])
    page.set_viewport_size({"width": size["width"], "height": min(height, 30000)})
    page.evaluate("""() => { const n = window.jupyterapp.shell.currentWidget?.content?.node; if (!n) return;
        for (const e of [n, ...n.querySelectorAll('.jp-WindowedPanel-outer')]) e.scrollTop = 0; }""")
    page.wait_for_timeout(500)  # relayout
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
    return path


def fail_with_screenshot(page, name: str, problems: list[str]) -> None:
    if problems:
        path = screenshot(page, name)
        raise AssertionError(f"{name}: {len(problems)} problem(s) in JupyterLab (screenshot: {path}):\n  "
                             + "\n  ".join(problems))


# --------------------------------------------------------------------------- notebooks


def prepare_stage_notebook(recipe, stage: str, params_path: Path, dst: Path) -> Path:
    """The stage's notebook with the runner's injected-parameters cell (its resolved params plus
    params_file and run_dir), not executed: what `autoif run` would execute, ready to run by hand."""
    import papermill as pm

    from autoif_lib.runner import KERNEL_NAME

    src = recipe.pipeline.notebook(stage, ROOT)
    injected = recipe.stage_params(stage)
    injected.update(params_file=str(Path(params_path)), run_dir=str(recipe.run_dir))
    dst.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(src), str(dst), parameters=injected, kernel_name=KERNEL_NAME, prepare_only=True,
                        progress_bar=False, log_output=False)
    return dst


def copy_outputs(src: Path, dst: Path) -> Path:
    """A private copy of an outputs root (store, runs with their relative links, generation cache)."""
    shutil.copytree(src, dst, symlinks=True)
    return dst
