"""MaskStore: round trip, failures, resume after SIGKILL, work parts + merge, two ranks as two
processes, corrupt shards, refusing to mix specs."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from og.masks.masks import Masks
from og.masks.shards import CorruptShardError, StoreError, list_shards
from og.masks.store import MaskStore, MaskStoreWriter, build_store, merge, part_of
from og.segmenters import build_segmenter

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "lambda i: np.full((20 + i % 5, 24 + i % 3, 3), (i * 37) % 256, np.uint8)"
make_image = eval(IMAGE)  # noqa: S307 - the same formula is used by the subprocesses below
SPEC = "random(count=3)"


def items(n, delay=0.0, broken=()):
    def loader(i):
        if delay:
            time.sleep(delay)
        if i in broken:
            raise OSError(f"cannot read image {i}")
        return make_image(i)

    return [(f"img/{i:03d}.jpg", lambda i=i: loader(i)) for i in range(n)]


def all_rows(root):
    """Every key of every finished shard, duplicates included."""
    return [k for p in list_shards(Path(root)) for k in pq.read_table(p, columns=["key"]).column("key").to_pylist()]


def expected(n):
    seg = build_segmenter(SPEC)
    return {f"img/{i:03d}.jpg": seg(make_image(i), key=f"img/{i:03d}.jpg") for i in range(n)}


def test_round_trip_failures_and_lookup(tmp_path):
    seg = build_segmenter(SPEC)
    summary = build_store(tmp_path / "s", items(12, broken={4}), seg, flush_every=5)
    assert (summary.written, summary.failed, summary.skipped) == (11, 1, 0)
    store = MaskStore(tmp_path / "s")
    ref = expected(12)
    assert len(store) == 11 and store.spec == "random(count=3)" and "img/004.jpg" not in store
    assert store.keys() == sorted(k for k in ref if k != "img/004.jpg")
    for key in store.keys():
        assert store.get(key) == ref[key]
    assert store.failures == [("img/004.jpg", "unreadable image: OSError: cannot read image 4")]
    with pytest.raises(KeyError, match="'img/004.jpg' failed when the store was built: unreadable"):
        store.get("img/004.jpg")
    with pytest.raises(KeyError, match="'nope.jpg' is not in mask store"):
        store.get("nope.jpg")
    stats = store.stats()
    assert stats["images"] == 11 and stats["masks"] == 33 and stats["histogram"]["1-4"] == 11
    again = build_store(tmp_path / "s", items(12), seg)  # resume: nothing left, the failure is not retried
    assert (again.written, again.skipped, again.todo) == (0, 12, 0)
    assert sorted(all_rows(tmp_path / "s")) == sorted(ref)  # 11 successes + 1 failure row, no duplicates


def test_writer_api_size_check_and_spec_mixing(tmp_path):
    rng = np.random.default_rng(0)
    masks = {f"k{i}": Masks(rng.random((i, 7, 9)) < 0.5, rng.random(i)) for i in range(4)}
    with MaskStoreWriter(tmp_path, "oracle", flush_every=2) as writer:
        for key, m in masks.items():
            assert writer.add(key, m, size=(7, 9))
        assert not writer.add("k1", masks["k1"]) and writer.skipped == 1  # already there: refused, counted
        with pytest.raises(ValueError, match=r"masks for 'bad' are 7x9 but the image is 9x7"):
            writer.add("bad", masks["k2"], size=(9, 7))
    store = MaskStore(tmp_path)
    assert all(store.get(k) == m for k, m in masks.items()) and store.get("k0").size == (7, 9)
    with pytest.raises(StoreError, match="holds masks of segmenter 'oracle', not 'slic'; refusing to mix"):
        MaskStoreWriter(tmp_path, "slic")
    with pytest.raises(StoreError, match="does not exist"):
        MaskStore(tmp_path / "missing")


SCRIPT = """
import sys, time, numpy as np
from og.masks.store import build_store
from og.segmenters import build_segmenter
make_image = {image}
def slow(i):
    time.sleep({delay})
    return make_image(i)
items = [(f"img/{{i:03d}}.jpg", lambda i=i: slow(i)) for i in range({n})]
def progress(key, n, summary):
    print("done", summary.written, flush=True)
s = build_store(sys.argv[1], items, build_segmenter("{spec}"), flush_every={flush}, prefetch=1, progress=progress)
print("summary", s.written, s.skipped, flush=True)
"""


def run_script(out, n, delay, flush, env=None):
    code = SCRIPT.format(image=IMAGE, delay=delay, n=n, spec=SPEC, flush=flush)
    return subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path):
    out, n = tmp_path / "s", 30
    proc = run_script(out, n, delay=0.05, flush=4)
    for line in proc.stdout:  # wait until at least two shards are on disk, then kill without warning
        if line.startswith("done") and int(line.split()[1]) >= 10:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = all_rows(out)
    assert 8 <= len(done_before) < n and len(set(done_before)) == len(done_before)
    (out / "shards" / ".p0000of0001-00099.parquet.tmp").write_bytes(b"half a shard")  # a kill mid-write
    summary = build_store(out, items(n), build_segmenter(SPEC), flush_every=4)
    assert summary.skipped == len(done_before) and summary.written == n - len(done_before)
    rows = all_rows(out)
    assert sorted(rows) == sorted(expected(n)) and len(rows) == n  # no loss, no duplicate
    assert not list((out / "shards").glob("*.tmp"))
    store, ref = MaskStore(out), expected(n)
    assert all(store.get(k) == ref[k] for k in ref)


def test_work_parts_and_merge(tmp_path):
    out, n, seg = tmp_path / "s", 24, build_segmenter(SPEC)
    for i in range(3):
        s = build_store(out, items(n), seg, shard=(i, 3), flush_every=3)
        assert s.part == (i, 3) and s.written == sum(part_of(k, 3) == i for k, _ in items(n))
    for path in list_shards(out):  # each part wrote only its own keys, into its own files
        part = int(path.name[1:5])
        keys = pq.read_table(path, columns=["key"]).column("key").to_pylist()
        assert path.name[5:11] == "of0003" and all(part_of(k, 3) == part for k in keys)
    assert merge(out) == {"images": n, "failures": 0, "duplicates": 0, "shards": len(list_shards(out))}
    store, ref = MaskStore(out), expected(n)
    assert store.keys() == sorted(ref) and all(store.get(k) == ref[k] for k in ref)
    shutil.copy(list_shards(out)[0], out / "shards" / "p0000of0003-00077.parquet")  # a collision
    copied = pq.read_table(out / "shards" / "p0000of0003-00077.parquet").num_rows
    assert merge(out)["duplicates"] == copied and len(MaskStore(out)) == n
    with pytest.raises(ValueError, match=r"--shard 3/3"):
        build_store(out, items(n), seg, shard=(3, 3))


def test_two_ranks_as_two_processes(tmp_path):
    out, n = tmp_path / "s", 20
    procs = [run_script(out, n, delay=0.0, flush=3, env={"RANK": str(r), "WORLD_SIZE": "2"}) for r in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    names = {p.name[:11] for p in list_shards(out)}
    assert names == {"p0000of0002", "p0001of0002"}
    assert merge(out)["duplicates"] == 0
    rows = all_rows(out)
    assert sorted(rows) == sorted(expected(n)) and len(rows) == n
    store, ref = MaskStore(out), expected(n)
    assert all(store.get(k) == ref[k] for k in ref)


def test_corrupt_shard_is_named_at_open_and_rebuilt_on_resume(tmp_path):
    out, n, seg = tmp_path / "s", 10, build_segmenter(SPEC)
    build_store(out, items(n), seg, flush_every=4)
    merge(out)
    victim = list_shards(out)[1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # truncated, e.g. by a full disk or a bad copy
    with pytest.raises(CorruptShardError, match=f"corrupt or truncated shard .*{victim.name}"):
        MaskStore(out)
    summary = build_store(out, items(n), seg, flush_every=4)
    assert summary.rebuilt == [victim.name] and summary.written == 4
    assert (victim.parent / (victim.name + ".corrupt")).exists()
    store, ref = MaskStore(out), expected(n)  # stale index: rebuilt in memory from the shards
    assert store.keys() == sorted(ref) and all(store.get(k) == ref[k] for k in ref)
    assert sorted(all_rows(out)) == sorted(ref)


def test_a_shard_of_another_spec_is_refused_by_merge(tmp_path):
    build_store(tmp_path / "a", items(4), build_segmenter(SPEC))
    build_store(tmp_path / "b", items(6)[4:], build_segmenter("grid(k=2)"))
    foreign = list_shards(tmp_path / "b")[0]
    shutil.copy(foreign, tmp_path / "a" / "shards" / "p0000of0001-00050.parquet")
    with pytest.raises(StoreError, match=r"p0000of0001-00050.parquet.*hold masks of \['grid\(k=2\)'\]"):
        merge(tmp_path / "a")
