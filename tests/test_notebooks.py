"""Notebook hygiene: in sync with the stage schemas, committed without outputs, title first."""

from __future__ import annotations

import nbformat
import pytest

from autoif_lib import methods
from autoif_lib.nbtools import notebook_has_outputs, stage_notebooks, sync_all
from autoif_lib.pipeline import get_pipeline
from autoif_lib.recipes import repo_root

PIPE = get_pipeline("autoif")
NOTEBOOKS = stage_notebooks(PIPE)


def test_every_autoif_notebook_has_a_declared_stage_and_vice_versa():
    on_disk = {p.stem for p in (repo_root() / PIPE.notebooks).glob("*.ipynb")}
    assert on_disk == set(PIPE.order)
    assert all(p.exists() for p in NOTEBOOKS.values())


def test_parameters_cells_in_sync_with_schemas():
    assert sync_all(check=True) == [], "run `autoif sync-notebooks`"


def _names_bound_before_open_stage(nb) -> set[str]:
    """Names the cells after the parameters cell bind (imports, assignments) before ``open_stage`` reads globals()."""
    import ast

    bound: set[str] = set()
    for cell in nb.cells[2:]:
        if cell.cell_type != "code":
            continue
        for node in ast.parse(cell.source).body:
            if "open_stage(" in ast.unparse(node):
                return bound
            for sub in ast.walk(node):
                if isinstance(sub, ast.alias):
                    bound.add(sub.asname or sub.name.split(".")[0])
                elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    bound.add(sub.id)
    return bound


# every method's stage notebooks, as (method, notebook path)
ALL_STAGE_NOTEBOOKS = sorted({(m, nb) for m in methods.names() for nb in stage_notebooks(get_pipeline(m)).values()})


@pytest.mark.parametrize("method,path", ALL_STAGE_NOTEBOOKS, ids=lambda x: getattr(x, "stem", x))
def test_one_notebook_convention_every_method(method, path):
    """Every method's stage notebook: title, parameters cell, opens its stage and finishes it, no outputs, and no
    control flow in a cell (no loop, branch, try or function): each cell calls the library and shows the result.
    ``with ctx.sandbox() as box:`` (a resource's scope) is the one block allowed."""
    import ast

    assert not notebook_has_outputs(path), f"{path.name}: strip outputs before committing"
    nb = nbformat.read(str(path), as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert "parameters" in nb.cells[1].metadata.get("tags", [])
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert f'open_stage("{method}/{path.stem}", globals())' in src and "ctx.finish(" in src
    control = [f"cell {i}: {type(n).__name__} at line {n.lineno}" for i, c in enumerate(nb.cells)
               if c.cell_type == "code" and i > 1 for n in ast.walk(ast.parse(c.source))
               if isinstance(n, (ast.For, ast.While, ast.If, ast.Try, ast.FunctionDef, ast.ClassDef))]
    assert not control, f"{path.name}: control flow belongs in the library: {control}"


def test_every_method_notebook_on_disk_is_declared():
    for m in methods.names():
        pipe = get_pipeline(m)
        assert set((repo_root() / pipe.notebooks).glob("*.ipynb")) == set(stage_notebooks(pipe).values()), m


@pytest.mark.parametrize("path", sorted({nb for _, nb in ALL_STAGE_NOTEBOOKS}), ids=lambda p: p.stem)
def test_no_import_shadows_a_parameter(path):
    # open_stage reads the parameters from globals(): a module imported under a parameter's name
    # (04's `backtranslate`) replaces the injected value before it is read, and the stage fails.
    nb = nbformat.read(str(path), as_version=4)
    params = {line.split(":")[0].strip() for line in nb.cells[1].source.splitlines()
              if line and not line.startswith("#") and ":" in line.split("=")[0]}
    assert params and not (params & _names_bound_before_open_stage(nb))
