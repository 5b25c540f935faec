"""Methods: what a training method declares so that the core can run, show, sweep and check it by name only.

A method is a package with a ``method`` module whose ``METHOD`` is a :class:`Method`. The core finds them two
ways, and names none of them:

- every subpackage of ``autoif_lib`` that has a ``method.py`` (the methods shipped here);
- the entry points of group ``autoif_lib.methods`` in any installed distribution, each naming a module that
  holds ``METHOD`` (a method package of your own: ``[project.entry-points."autoif_lib.methods"]
  mymethod = "mypkg.method"`` in its pyproject, then ``pip install -e .``).

A declaration names modules, not objects, so discovering the methods imports no method code: its pipeline
module (which registers the stages) and its results module (``collect(run_dir)`` and ``METRICS``) are
imported when a run, a sweep or a table first needs them. README: "Adding a method".
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .params import ParamsError, did_you_mean

ENTRY_POINT_GROUP = "autoif_lib.methods"


@dataclass(frozen=True)
class Method:
    """One method's declaration (its package's ``method.METHOD``)."""

    name: str                 # what recipes write as ``pipeline: <name>``; the store folder and the results' pipeline column
    display: str              # its label in tables and figures
    color: str                # its colour in figures (any matplotlib colour)
    pipeline: str             # module that registers its ``Pipeline`` named ``name`` (``pipeline.register``)
    results: str              # module with ``collect(run_dir) -> rows`` and ``METRICS`` (``results.py``)
    # what a run trains on, for the contamination check: (stage folder, file); a stage that starts with "_"
    # matches every folder ending in it (``"_data"``: ``06_t1_data``, ``12_t2_data``, ...)
    training_files: tuple[tuple[str, str], ...] = ()
    # training kinds it adds to the engine (``train.kinds()``): (kind, "module:function"), the function
    # ``f(job: train.TrainJob) -> result`` reading its own settings from ``job.options``
    training_kinds: tuple[tuple[str, str], ...] = ()
    # metrics a sweep draws per iteration (``<name>_iterations`` figure) when the method iterates
    iteration_metrics: tuple[str, ...] = ()
    default: bool = False     # the pipeline of a recipe that names none (exactly one method may say so)
    # a stage folder only this method's runs have: tells the method of a run folder that records none
    marker_stage: str = ""
    doc: str = field(default="", compare=False)

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"method name {self.name!r}: must be a Python identifier (it names folders and columns)")


_METHODS: dict[str, Method] | None = None


def _from_module(modname: str, origin: str) -> Method:
    mod = importlib.import_module(modname)
    m = getattr(mod, "METHOD", None)
    if not isinstance(m, Method):
        raise ParamsError(f"{origin}: module {modname} has no METHOD = Method(...)")
    return m


def discover(refresh: bool = False) -> dict[str, Method]:
    """Every method: the ``autoif_lib`` subpackages with a ``method`` module, then the entry points."""
    global _METHODS
    if _METHODS is not None and not refresh:
        return _METHODS
    found: dict[str, Method] = {}

    def add(m: Method, origin: str):
        if m.name in found and found[m.name] != m:
            raise ParamsError(f"method {m.name!r} declared twice ({origin} and another package)")
        found[m.name] = m

    here = Path(__file__).resolve().parent
    for info in sorted(pkgutil.iter_modules([str(here)]), key=lambda i: i.name):
        if info.ispkg and (here / info.name / "method.py").is_file():
            add(_from_module(f"{__package__}.{info.name}.method", f"autoif_lib/{info.name}"), f"autoif_lib.{info.name}")
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        m = _from_module(ep.value.split(":", 1)[0], f"entry point {ep.name} ({ep.value})")
        if m.name != ep.name:
            raise ParamsError(f"entry point {ep.name} ({ep.value}) declares a method named {m.name!r}: name them alike")
        add(m, f"entry point {ep.name}")
    defaults = [m.name for m in found.values() if m.default]
    if len(defaults) > 1:
        raise ParamsError(f"methods {', '.join(defaults)} all say default=True; one may")
    _METHODS = found
    return found


def names() -> list[str]:
    return list(discover())


def get(name: str) -> Method:
    """The method ``name``, with a did-you-mean hint when there is none."""
    ms = discover()
    if name not in ms:
        ms = discover(refresh=True)  # a package installed since the first look
    if name not in ms:
        raise ParamsError(f"pipeline: unknown pipeline {name!r}{did_you_mean(name, ms)}; known methods: {', '.join(ms) or 'none'}")
    return ms[name]


def default_name() -> str:
    """The method a recipe without ``pipeline:`` runs."""
    for m in discover().values():
        if m.default:
            return m.name
    raise ParamsError("no method says default=True: recipes must name their pipeline")


def color(name: str, fallback: str = "tab:green") -> str:
    m = discover().get(name)
    return m.color if m else fallback


def display(name: str) -> str:
    m = discover().get(name)
    return m.display if m else str(name)


def of_run(run_dir: Path, recorded: str | None = None) -> str:
    """The method of a run folder: the one it records, else the one whose marker stage it has, else the default."""
    if recorded:
        return recorded
    for m in discover().values():
        if m.marker_stage and (Path(run_dir) / m.marker_stage).exists():
            return m.name
    return default_name()
