"""Table readers: CSV, JSON (list or {id: record}), JSONL, Parquet; column checks; file hashes."""

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from og.eval.base import BenchmarkFormatError
from og.eval.tables import find_table, read_records, sha256_file

RECORDS = [{"a": "1", "b": "x"}, {"a": "2", "b": "y"}]


def test_formats_read_the_same(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,x\n2,y\n")
    (tmp_path / "t.json").write_text(json.dumps(RECORDS))
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n\n")
    pq.write_table(pa.Table.from_pylist(RECORDS), tmp_path / "t.parquet")
    for suffix in ("csv", "json", "jsonl", "parquet"):
        assert read_records(tmp_path / f"t.{suffix}", ("a", "b")) == RECORDS
    (tmp_path / "d.json").write_text(json.dumps({"7": {"a": "1"}, "8": {"a": "2"}}))
    assert read_records(tmp_path / "d.json", ("id", "a")) == [{"id": "7", "a": "1"}, {"id": "8", "a": "2"}]
    assert find_table(tmp_path, "t") == tmp_path / "t.csv" and find_table(tmp_path, "zz") is None


def test_aliases_and_errors(tmp_path):
    (tmp_path / "q.csv").write_text("lndex,Question\n1,Q\n")
    assert read_records(tmp_path / "q.csv", ("Index", "Question"), aliases={"lndex": "Index"}) == [
        {"Index": "1", "Question": "Q"}]
    (tmp_path / "r.jsonl").write_text(json.dumps({"a": 1, "b": 2}) + "\n" + json.dumps({"a": 1}) + "\n")
    with pytest.raises(BenchmarkFormatError, match=r"r.jsonl \(record 1\): expected columns a, b; found a"):
        read_records(tmp_path / "r.jsonl", ("a", "b"))
    (tmp_path / "e.csv").write_text("a,b\n")
    with pytest.raises(BenchmarkFormatError, match="no records; expected columns a, b"):
        read_records(tmp_path / "e.csv", ("a", "b"))
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(BenchmarkFormatError, match="unsupported file type '.txt'"):
        read_records(tmp_path / "x.txt", ("a",))


def test_sha256(tmp_path):
    (tmp_path / "f").write_bytes(b"abc" * 1000)
    assert sha256_file(tmp_path / "f", chunk=7) == hashlib.sha256(b"abc" * 1000).hexdigest()
