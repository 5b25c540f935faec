"""Fixtures of the browser suite: Playwright on the system Chromium, one JupyterLab server, finished smoke runs.

Finished runs, cheaply: the headless smoke tests (tests/test_pipeline_smoke.py, tests/test_spar_smoke.py) build
one smoke run per pipeline in their module fixtures ``smoke_run`` / ``spar_run``. When this suite is selected,
a small plugin copies each of those outputs roots the moment its fixture has built it (before the smoke tests'
own reruns and ablations add to it), and the browser tests run last and work on those copies. Run alone
(``pytest tests/browser``) the suite builds the two smoke runs itself (about 4.5 min each on 2 cores), unless
``AUTOIF_BROWSER_OUTPUTS_AUTOIF`` / ``AUTOIF_BROWSER_OUTPUTS_SPAR`` name outputs roots holding finished smoke
runs (copied, never written).

Working on a copy matters: a stage notebook run by hand with the run's params and ``run_dir`` opens the same
key as the runner did (``runs.open_stage``) and rewrites that store folder in place, so running it in the
original outputs would change files the smoke tests read.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from . import labdriver

SMOKE_RECIPES = {"autoif": "params/autoif/smoke.yaml", "spar": "params/spar/smoke.yaml"}
_SMOKE_FIXTURES = {"smoke_run": "autoif", "spar_run": "spar"}  # the smoke test modules' fixtures


class _SmokeSnapshots:
    """Copies the outputs root of each smoke fixture right after it is built (a global plugin: the
    fixtures live in other test modules, so a hook in this conftest would not see them)."""

    def __init__(self):
        self.copies: dict[str, Path] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        result = yield
        pipe = _SMOKE_FIXTURES.get(fixturedef.argname)
        if pipe and pipe not in self.copies and isinstance(result, dict) and "out" in result:
            dst = request.getfixturevalue("tmp_path_factory").mktemp(f"browser_{pipe}_outputs", numbered=True) / "outputs"
            labdriver.copy_outputs(Path(result["out"]), dst)
            self.copies[pipe] = dst
        return result


def pytest_collection_modifyitems(session, config, items):
    """Browser tests last (after the smoke modules whose runs they reuse); the snapshot plugin only when
    some browser test is selected."""
    browser = [it for it in items if it.get_closest_marker("browser")]
    if not browser:
        return
    items[:] = [it for it in items if not it.get_closest_marker("browser")] + browser
    if not config.pluginmanager.has_plugin("autoif-smoke-snapshots"):
        config.pluginmanager.register(_SmokeSnapshots(), "autoif-smoke-snapshots")


# --------------------------------------------------------------------------- tools


@pytest.fixture(scope="session")
def browser_tools():
    missing = labdriver.missing_browser_tools()
    if missing:
        msg = "browser suite needs " + "; ".join(missing)
        if os.environ.get("AUTOIF_SKIP_BROWSER") == "1":
            pytest.skip(msg + " (AUTOIF_SKIP_BROWSER=1)")
        pytest.fail(msg + "; or set AUTOIF_SKIP_BROWSER=1 to skip the browser tests", pytrace=False)


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory, browser_tools) -> Path:
    """What JupyterLab serves: prepared stage notebooks are written here."""
    return tmp_path_factory.mktemp("lab_root")


@pytest.fixture(scope="session")
def lab(lab_root, tmp_path_factory):
    from autoif_lib.runner import ensure_kernel

    ensure_kernel()  # `make setup` installs it; harmless when present
    server = labdriver.Lab(lab_root, tmp_path_factory.mktemp("lab_home"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium(browser_tools):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=labdriver.CHROMIUM, args=labdriver.CHROMIUM_ARGS,
                                     headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def _lab_page(chromium, lab):
    ctx = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


@pytest.fixture
def page(_lab_page, lab):
    """The JupyterLab page, shared by the tests (one JupyterLab load); after each test its tabs are closed
    and every kernel is shut down (each stage kernel holds torch and a model)."""
    _lab_page.set_default_timeout(30_000)
    try:
        yield _lab_page
    finally:
        try:
            labdriver.close_all(_lab_page)
        except Exception:  # noqa: BLE001 - a broken page is reloaded by the next open_notebook
            _lab_page.goto("about:blank")
        lab.shutdown_kernels()


# --------------------------------------------------------------------------- finished smoke runs


@pytest.fixture(scope="session")
def smoke_outputs(request, tmp_path_factory):
    """{pipeline: a private outputs root holding that pipeline's finished smoke run}, built on first use."""
    plugin = request.config.pluginmanager.get_plugin("autoif-smoke-snapshots")
    cache: dict[str, Path] = {}

    def get(pipe: str) -> Path:
        if pipe in cache:
            return cache[pipe]
        if plugin is not None and pipe in plugin.copies:
            cache[pipe] = plugin.copies[pipe]
            return cache[pipe]
        given = os.environ.get(f"AUTOIF_BROWSER_OUTPUTS_{pipe.upper()}")  # an outputs root with a finished smoke run
        if given:
            cache[pipe] = labdriver.copy_outputs(Path(given), tmp_path_factory.mktemp(f"browser_{pipe}_given") / "o")
            return cache[pipe]
        from autoif_lib.runner import run_recipe

        out = tmp_path_factory.mktemp(f"browser_{pipe}_own_outputs")
        t0 = time.time()
        run_recipe(labdriver.ROOT / SMOKE_RECIPES[pipe], outputs=str(out), progress=False, echo=lambda *_: None)
        print(f"\nbrowser suite: built its own {pipe} smoke run in {time.time() - t0:.0f} s "
              "(no smoke fixture ran earlier in this session)")
        cache[pipe] = out
        return out

    return get


@pytest.fixture(scope="session")
def stage_notebooks(smoke_outputs, lab_root):
    """{pipeline: (recipe, {stage: notebook path relative to lab_root})}: each enabled stage's notebook
    prepared with the runner's parameters against the private copy of the finished run."""
    from autoif_lib.recipes import load_recipe
    from autoif_lib import io
    from autoif_lib.runs import PLAN

    prepared: dict[str, tuple] = {}

    def get(pipe: str):
        if pipe in prepared:
            return prepared[pipe]
        out = smoke_outputs(pipe)
        params_path = labdriver.ROOT / SMOKE_RECIPES[pipe]
        recipe = load_recipe(params_path, overrides={"outputs": str(out)})
        assert recipe.run_dir.is_dir(), f"no finished {pipe} smoke run at {recipe.run_dir}"
        io.write_json(recipe.run_dir / PLAN, recipe.plan())  # the copy's own paths (outputs, stage dirs)
        nbs = {}
        for st in recipe.pipeline.stages:
            if not st.is_enabled(recipe.stages[st.name]):
                continue
            rel = Path(pipe) / f"{st.name}.ipynb"
            labdriver.prepare_stage_notebook(recipe, st.name, params_path, lab_root / rel)
            nbs[st.name] = str(rel)
        prepared[pipe] = (recipe, nbs)
        return prepared[pipe]

    return get


@pytest.fixture(scope="session")
def saved_notebooks(smoke_outputs, lab_root):
    """{pipeline: {stage: relative path}}: the executed notebooks the runner saved, copied into the lab root."""
    from autoif_lib.recipes import load_recipe

    done: dict[str, dict] = {}

    def get(pipe: str) -> dict:
        if pipe not in done:
            out = smoke_outputs(pipe)
            recipe = load_recipe(labdriver.ROOT / SMOKE_RECIPES[pipe], overrides={"outputs": str(out)})
            nbs = {}
            for st in recipe.pipeline.stages:
                src = recipe.run_dir / st.name / "notebook.ipynb"
                if st.is_enabled(recipe.stages[st.name]) and src.exists():
                    rel = Path("saved") / pipe / f"{st.name}.ipynb"
                    (lab_root / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, lab_root / rel)
                    nbs[st.name] = str(rel)
            done[pipe] = nbs
        return done[pipe]

    return get
