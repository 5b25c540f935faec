"""Atomic writes and JSONL reading with clear errors."""

from __future__ import annotations

import pytest

from autoif_lib import io


def test_jsonl_roundtrip_and_atomicity(tmp_path):
    p = tmp_path / "a" / "x.jsonl"
    io.write_jsonl(p, [{"a": 1}, {"b": "é"}])
    assert io.read_jsonl(p) == [{"a": 1}, {"b": "é"}]
    assert not [f for f in p.parent.iterdir() if f.name.endswith(".tmp")]


def test_failed_write_keeps_old_file(tmp_path):
    p = tmp_path / "x.json"
    io.write_json(p, {"v": 1})

    class Boom:
        pass

    with pytest.raises(TypeError):
        io.write_json(p, {"v": Boom()})
    assert io.read_json(p) == {"v": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["x.json"]


def test_malformed_jsonl_names_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"a": 1}\n\n{oops\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:3: not valid JSON"):
        io.read_jsonl(p)
    p.write_text('[1, 2]\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: expected a JSON object"):
        io.read_jsonl(p)


def test_stable_hash_ignores_key_order():
    assert io.stable_hash({"a": 1, "b": [1, 2]}) == io.stable_hash({"b": [1, 2], "a": 1})
    assert io.stable_hash({"a": 1}) != io.stable_hash({"a": 2})
