"""Browser suite: JupyterLab in the system Chromium, driven by Playwright (a package so its conftest is browser.conftest)."""
