"""Field names of TRL's config classes, read from the installed sources without importing TRL.

Recipes pass training settings straight into ``SFTConfig``/``DPOConfig`` with TRL's
own field names. A misspelled key must fail when
the recipe is loaded, not an hour later when stage 08 starts, but importing TRL
takes seconds; so we parse the dataclass definitions (and their bases, up to
transformers' ``TrainingArguments``) with ``ast``: field names and annotations.
``convert`` checks values against the annotated scalar types and converts what
YAML 1.1 gets wrong (``5e-7`` without a dot is read as a string): a value that
cannot be the field's type fails, naming the key.
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
    "GRPOConfig": ("trl", "trainer/grpo_config.py"),
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
def _fields_of(cls_name: str, near: str | None = None) -> dict[str, str] | None:
    """Field name -> annotation source text, own fields over inherited ones."""
    tree = _parse(Path(near)) if near else None
    found = _locate(cls_name, Path(near) if near else None, tree)
    if found is None:
        return None
    node, path, module = found
    own = {st.target.id: ast.unparse(st.annotation) for st in node.body
           if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)}
    names: dict[str, str] = {}
    for b in node.bases:
        base = b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else None
        if base is None or base in ("object", "Generic"):
            continue
        parent = _fields_of(base, str(path))
        if parent is None:
            return None  # an unresolvable base: better to skip the check than to reject valid keys
        names.update(parent)
    names.update(own)
    return names


def config_fields(cls_name: str) -> frozenset[str] | None:
    """All field names of a TRL/transformers config dataclass; None if it cannot be found."""
    fields = _fields_of(cls_name)
    return None if fields is None else frozenset(n for n in fields if not n.startswith("_"))


_SCALARS = ("bool", "int", "float", "str")


def field_types(cls_name: str) -> dict[str, frozenset[str]] | None:
    """Field -> the scalar types its annotation admits (empty set: not a plain scalar, left unchecked)."""
    fields = _fields_of(cls_name)
    if fields is None:
        return None
    out = {}
    for name, ann in fields.items():
        if name.startswith("_"):
            continue
        words = set(ann.replace("[", " ").replace("]", " ").replace("|", " ").replace(",", " ").split())
        if words & {"Any", "dict", "list", "Dict", "List", "Callable", "tuple", "Tuple"} or "Literal" in ann:
            out[name] = frozenset()  # containers, Literal and Any: TRL itself checks them
            continue
        if "str" in words and "Enum" not in ann and not words & {"float", "int"}:
            out[name] = frozenset({"str"})
            continue
        out[name] = frozenset(w for w in _SCALARS if w in words)
    return out


def _as(value, types_: frozenset[str], where: str):
    if not types_ or value is None:
        return value
    if isinstance(value, bool):
        if "bool" in types_:
            return value
        raise ValueError(f"{where}: expected {' or '.join(sorted(types_))}, got bool {value!r}")
    if isinstance(value, (int, float)):
        if "int" in types_ and isinstance(value, int):
            return value
        if "float" in types_:
            return float(value)
        if "int" in types_ and float(value).is_integer():
            return int(value)
        if "str" in types_:
            return value  # e.g. a str-or-enum field given a number: TRL decides
        raise ValueError(f"{where}: expected {' or '.join(sorted(types_))}, got {type(value).__name__} {value!r}")
    if isinstance(value, str):
        if "float" in types_ or "int" in types_:
            try:
                x = float(value)
            except ValueError:
                x = None
            if x is not None:
                if "int" in types_ and x.is_integer() and "float" not in types_:
                    return int(x)
                if "float" in types_:
                    return x
            if "str" in types_:
                return value
            raise ValueError(f"{where}: expected {' or '.join(sorted(types_))}, got str {value!r}")
        if types_ == {"bool"}:
            raise ValueError(f"{where}: expected bool (true/false), got str {value!r}")
    return value


def convert(cls_name: str, kwargs: dict, where: str) -> dict:
    """``kwargs`` with each scalar checked and converted to its TRL field's type; ValueError names the key."""
    types_ = field_types(cls_name)
    if types_ is None:
        return dict(kwargs)
    return {k: _as(v, types_.get(k, frozenset()), f"{where}.{k}") for k, v in kwargs.items()}


def unknown_keys(cls_name: str, keys) -> tuple[list[str], frozenset[str] | None]:
    """Keys that are not fields of ``cls_name`` (empty when the class cannot be inspected)."""
    fields = config_fields(cls_name)
    if fields is None:
        return [], None
    return [k for k in keys if k not in fields], fields
