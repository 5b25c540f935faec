"""Field names of TRL's config classes, read from the installed sources without importing TRL.

Recipes pass training settings straight into ``SFTConfig``/``DPOConfig``/
``OnlineDPOConfig`` with TRL's own field names. A misspelled key must fail when
the recipe is loaded, not an hour later when stage 08 starts, but importing TRL
takes seconds; so we parse the dataclass definitions (and their bases, up to
transformers' ``TrainingArguments``) with ``ast``. The notebooks then build the
real config objects, which do the full type checking.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path

# Where each class is defined, relative to its package.
_LOCATIONS = {
    "SFTConfig": ("trl", "trainer/sft_config.py"),
    "DPOConfig": ("trl", "trainer/dpo_config.py"),
    "OnlineDPOConfig": ("trl", "experimental/online_dpo/online_dpo_config.py"),
    "TrainingArguments": ("transformers", "training_args.py"),
}


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _class_in(path: Path, cls_name: str) -> tuple[ast.ClassDef, Path, ast.Module] | None:
    tree = _parse(path)
    for node in (tree.body if tree else []):
        if isinstance(node, ast.ClassDef) and node.name == cls_name:
            return node, path, tree
    return None


def _locate(cls_name: str, near: Path | None = None, tree: ast.Module | None = None):
    """Find ``cls_name``: via the importing module's ``from X import`` line, else the known location."""
    if near is not None and tree is not None:
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and any(a.name == cls_name for a in node.names):
                if node.level:  # relative import: a sibling module of the same package
                    base = near.parent
                    for _ in range(node.level - 1):
                        base = base.parent
                    target = base.joinpath(*(node.module or "").split(".")).with_suffix(".py")
                    found = _class_in(target, cls_name)
                    if found:
                        return found
    pkg, rel = _LOCATIONS.get(cls_name, (None, None))
    if pkg and (base := _package_dir(pkg)) is not None:
        return _class_in(base / rel, cls_name)
    return None


@functools.lru_cache(maxsize=None)
def _fields_of(cls_name: str, near: str | None = None) -> frozenset[str] | None:
    tree = _parse(Path(near)) if near else None
    found = _locate(cls_name, Path(near) if near else None, tree)
    if found is None:
        return None
    node, path, module = found
    names = {st.target.id for st in node.body if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)}
    for b in node.bases:
        base = b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else None
        if base is None or base in ("object", "Generic"):
            continue
        parent = _fields_of(base, str(path))
        if parent is None:
            return None  # an unresolvable base: better to skip the check than to reject valid keys
        names |= parent
    return frozenset(names)


def config_fields(cls_name: str) -> frozenset[str] | None:
    """All field names of a TRL/transformers config dataclass; None if it cannot be found."""
    fields = _fields_of(cls_name)
    return None if fields is None else frozenset(n for n in fields if not n.startswith("_"))


def unknown_keys(cls_name: str, keys) -> tuple[list[str], frozenset[str] | None]:
    """Keys that are not fields of ``cls_name`` (empty when the class cannot be inspected)."""
    fields = config_fields(cls_name)
    if fields is None:
        return [], None
    return [k for k in keys if k not in fields], fields
