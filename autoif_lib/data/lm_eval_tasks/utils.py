"""Dataset loader for the packaged lm-eval task ``autoif_tiny_qa`` (named by ``custom_dataset`` in its YAML).

lm-eval imports this file by path (``!function utils.load_items``), not as ``autoif_lib.…``, so it must not
import anything relative to the package.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).resolve().parent / "autoif_tiny_qa.jsonl"


def load_items(**_metadata: Any):
    """The items as a ``DatasetDict`` with one ``test`` split.

    lm-eval calls this with the task metadata and the model arguments as keywords (``pretrained=…``,
    ``dtype=…``); none of them changes the data, so they are accepted and ignored. The file is read
    directly (no ``datasets`` builder), so nothing is cached or looked up on the hub.
    """
    import datasets

    with open(DATA_FILE, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
