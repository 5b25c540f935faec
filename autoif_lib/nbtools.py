"""Notebook hygiene: parameters cells rendered from the stage dataclasses; outputs stripped.

The typed schema lives in each method's ``stages.py``; each notebook's ``parameters``
cell is rendered from it (flat, one commented line per value, quickstart
defaults), so the two cannot drift: ``autoif sync-notebooks`` rewrites the
cells and a test runs it in check mode.
"""

from __future__ import annotations

import dataclasses
import pprint
import types
import typing
from pathlib import Path

from . import methods
from .pipeline import Pipeline, get_pipeline
from .recipes import repo_root


def _literal(value) -> str:
    if dataclasses.is_dataclass(value):
        # Nested specs show only what matters here: the first two fields plus what differs
        # from the class defaults. The dataclass fills in the rest.
        defaults = type(value)()
        names = [f.name for f in dataclasses.fields(value)]
        value = {k: getattr(value, k) for k in names
                 if k in names[:2] or getattr(value, k) != getattr(defaults, k)}
    if isinstance(value, tuple):
        value = list(value)
    return pprint.pformat(value, width=10_000, sort_dicts=False)


def _recipe_values(pipe: Pipeline, stage: str) -> dict:
    """The stage's values in the pipeline's default recipe (the quickstart): what a notebook opened by
    hand runs on, so that it writes into the quickstart run."""
    from .recipes import load_recipe

    root = repo_root()
    recipe = load_recipe(root / pipe.default_recipe, root=root)
    return recipe.stage_params(stage)


def render_parameters(stage: str, pipeline: str | None = None) -> str:
    pipe = get_pipeline(pipeline or methods.default_name())
    cls = pipe.stage(stage).params
    lines = ["# parameters: the whole interface of this stage. `autoif run` injects the recipe's values",
             f"# below; opened by hand it runs on these values, the quickstart's. Schema: {cls.__module__}."]
    fields = dataclasses.fields(cls)
    hints = typing.get_type_hints(cls)
    defaults = {f.name: _default(f) for f in fields}
    values = _recipe_values(pipe, stage)
    for f in fields:
        if dataclasses.is_dataclass(defaults[f.name]):  # nested spec: rebuild from the recipe's dict
            defaults[f.name] = type(defaults[f.name])(**values[f.name])
        else:
            defaults[f.name] = values[f.name]
    defaults["params_file"] = pipe.default_recipe
    defaults["run_dir"] = ""
    codes = {f.name: f"{f.name}: {_annotation(hints[f.name])} = {_literal(defaults[f.name])}" for f in fields}
    width = max(len(c) for c in codes.values() if len(c) <= 60)
    for f in fields:
        code = codes[f.name]
        help_ = f.metadata.get("help", "")
        if len(code) > 60:
            lines.append(f"# {help_.replace('=', ':')}")
            lines.append(code)
        else:
            lines.append(f"{code:<{width}}  # {help_.replace('=', ':')}")
    return "\n".join(lines)


def _annotation(tp) -> str:
    """A plain annotation papermill understands (``--help-notebook`` shows it)."""
    if dataclasses.is_dataclass(tp):
        return "dict"
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return type(typing.get_args(tp)[0]).__name__
    if origin in (list, tuple):
        return "list"
    if origin is dict:
        return "dict"
    if origin in (typing.Union, types.UnionType):
        return "str"
    return getattr(tp, "__name__", "str")


def _default(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def sync_notebook(path: Path, check: bool = False, pipeline: str | None = None, stage: str | None = None) -> bool:
    """Rewrite the parameters cell of one notebook; return True if it changed (or would)."""
    import nbformat

    stage, pipeline = stage or path.stem, pipeline or methods.default_name()
    if stage not in get_pipeline(pipeline).order:
        return False
    nb = nbformat.read(str(path), as_version=4)
    want = render_parameters(stage, pipeline)
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            if cell.source == want:
                return False
            if not check:
                cell.source = want
                nbformat.write(nb, str(path))
            return True
    raise ValueError(f"{path}: no cell tagged 'parameters'")


def stage_notebooks(pipe: Pipeline, root: Path | None = None) -> dict[str, Path]:
    """Stage name -> its notebook, for every stage the pipeline declares (iterations share one)."""
    root = root or repo_root()
    return {s: pipe.notebook(s, root) for s in pipe.order}


def notebook_stages(pipe: Pipeline, root: Path | None = None) -> dict[Path, str]:
    """Notebook -> the first stage that uses it (its parameters cell shows that stage's values)."""
    out: dict[Path, str] = {}
    for stage, p in stage_notebooks(pipe, root).items():
        out.setdefault(p, stage)
    return out


def sync_all(check: bool = False, root: Path | None = None) -> list[Path]:
    changed = []
    for name in methods.names():
        for p, stage in notebook_stages(get_pipeline(name), root).items():
            if sync_notebook(p, check=check, pipeline=name, stage=stage):
                changed.append(p)
    return changed


def notebook_has_outputs(path: Path) -> bool:
    """Source notebooks are committed without outputs or execution counts."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    return any(c.cell_type == "code" and (c.outputs or c.execution_count) for c in nb.cells)


def new_notebook(stage: str, title: str, purpose: str, cells: list[tuple[str, str]],
                 pipeline: str | None = None) -> "nbformat.NotebookNode":  # noqa: F821
    """Build a stage notebook: title + purpose, the parameters cell, then (kind, source) cells."""
    import nbformat
    from nbformat import v4

    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "autoif-workbench", "display_name": "AutoIF workbench", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells.append(v4.new_markdown_cell(f"# {title}\n\n> {purpose}"))
    nb.cells.append(v4.new_code_cell(render_parameters(stage, pipeline), metadata={"tags": ["parameters"]}))
    for kind, src in cells:
        nb.cells.append(v4.new_markdown_cell(src) if kind == "md" else v4.new_code_cell(src))
    nbformat.validator.normalize(nb)
    return nb
