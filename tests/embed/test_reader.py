"""Reading and planning (no model): every format gives the same rows, windows seek exactly, and each kind
of bad input is reported with its file and line/row (or skipped and counted)."""
import csv

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from embed_helpers import corpus, write_jsonl

from l2v.embed.inputs import expand
from l2v.embed.plan import make_plan, records_from, windows
from l2v.embed.reader import Fields
from l2v.errors import InputError, RowError

ROWS = corpus(50, seed=1)


def write_all(d):
    """The same 50 rows as JSONL, CSV (with a quoted newline), Parquet (3 row groups) and plain text."""
    rows = [dict(r) for r in ROWS]
    rows[3]["text"] = "a text\nover two lines, with \"quotes\", commas"
    write_jsonl(d / "a.jsonl", rows)
    with open(d / "a.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["id", "text"])
        w.writeheader()
        w.writerows(rows)
    pq.write_table(pa.table({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows]}),
                   d / "a.parquet", row_group_size=20)
    (d / "a.txt").write_text("".join(r["text"].replace("\n", " ") + "\n" for r in rows), encoding="utf-8")
    return rows


def plan_of(paths, window=8, skip=False, fields=Fields()):
    return make_plan(expand([str(p) for p in paths]), fields, window, skip)


def all_records(plan):
    return [r for _, rows in windows(plan, range(plan.windows)) for r in rows]


@pytest.mark.parametrize("name", ["a.jsonl", "a.csv", "a.parquet", "a.txt"])
def test_every_format_gives_the_rows_and_windows_seek(tmp_path, name):
    rows = write_all(tmp_path)
    plan = plan_of([tmp_path / name])
    recs = all_records(plan)
    texts = [r["text"].replace("\n", " ") if name == "a.txt" else r["text"] for r in rows]
    assert [r.text for r in recs] == texts
    assert [r.id for r in recs] == (list(range(1, 51)) if name == "a.txt" else [r["id"] for r in rows])
    assert plan.rows == 50 and plan.windows == 7 and plan.window_rows(6) == 2
    for k in (6, 2, 3):  # a window read alone (seeking) equals the same window read in sequence
        alone = next(windows(plan, [k]))[1]
        assert alone == recs[k * 8:(k + 1) * 8]


def test_globs_directories_order_and_out_dir_excluded(tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    write_jsonl(d / "b.jsonl", ROWS[:3])
    write_jsonl(d / "sub" / "a.jsonl", ROWS[3:5])
    (d / ".hidden.jsonl").write_text("{}\n")
    (d / "out").mkdir()
    pq.write_table(pa.table({"id": [1]}), d / "out" / "part-000000.parquet")
    files = expand([str(d)], out=d / "out")
    assert [f.name for f in files] == ["b.jsonl", "a.jsonl"]
    assert [f.name for f in expand([str(d / "**" / "*.jsonl")])] == ["b.jsonl", "a.jsonl"]
    with pytest.raises(InputError, match="matches no file"):
        expand([str(d / "*.csv")])
    with pytest.raises(InputError, match="named twice"):
        expand([str(d / "b.jsonl"), str(d / "b.jsonl")])
    (d / "x.dat").write_text("hello\n")
    with pytest.raises(InputError, match="cannot tell the format"):
        expand([str(d / "x.dat")])
    assert expand([str(d / "x.dat")], forced="text")[0].format == "text"


def test_text_ids_are_line_numbers_across_files(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    (tmp_path / "b.txt").write_text("three\n\nfive\n")
    plan = plan_of([tmp_path / "a.txt", tmp_path / "b.txt"], skip=True, fields=Fields(text="body"))
    assert [(r.id, r.text) for r in all_records(plan)] == [(1, "one"), (2, "two"), (3, "three"), (5, "five")]
    assert plan.skipped_rows == [{"at": "b.txt line 2", "reason": "the line is empty"}]


BAD = [  # (file name, content, the message it must give)
    ("m.jsonl", b'{"id": 1, "text": "ok"}\n{"id": 2}\n', "m.jsonl line 2 (id 2): has no field 'text'"),
    ("e.jsonl", b'{"id": 1, "text": "ok"}\n\n{"id": 2, "text": "  "}\n', "e.jsonl line 3 (id 2): field 'text' is empty"),
    ("u.jsonl", b'{"id": 1, "text": "ok"}\n{"id": 2, "text": "caf\xe9"}\n', "u.jsonl line 2: not valid UTF-8 (byte 0xe9"),
    ("j.jsonl", b'{"id": 1, "text": "ok"}\n{"id": 2, "text": "x"\n', "j.jsonl line 2: not valid JSON"),
    ("d.jsonl", b'{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n{"id": "a", "text": "z"}\n',
     "d.jsonl line 3 (id 'a'): duplicate id 'a' (first at d.jsonl line 1)"),
    ("t.jsonl", b'{"id": 1, "text": "x"}\n{"id": "b", "text": "y"}\n',
     "t.jsonl line 2 (id 'b'): the id is a string, but the ids before it are integers"),
    ("f.jsonl", b'{"id": 1.5, "text": "x"}\n', "f.jsonl line 1: field 'id' is a float"),
    ("u.txt", b"fine\nbad \xff byte\n", "u.txt line 2: the line is not valid UTF-8 (byte 0xff at offset 4)"),
    ("u.csv", b"id,text\n1,ok\n2,bad \xff\n", "u.csv row 2 (id '2'): field 'text' is not valid UTF-8"),
    ("m.csv", b"id,text\n1,ok\n2,a,b\n", "m.csv: a malformed CSV record (3 fields, expected 2): '2,a,b'"),
    ("n.csv", b"id,body\n1,ok\n", "n.csv: has no column 'text' (it has id, body)"),
    ("c.parquet", b"PAR1 this is not parquet", "c.parquet: is not a readable parquet file"),
]


@pytest.mark.parametrize("name,content,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_file_and_row(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError) as e:
        plan_of([tmp_path / name])
    assert message in str(e.value)
    try:  # --on-error skip: the row (or the unreadable file) is left out and counted
        plan = plan_of([tmp_path / name], skip=True)
    except InputError as e:
        assert "no row to embed" in str(e)  # the file had no good row at all
    else:
        assert plan.skipped + sum(s.skipped is not None for s in plan.sources) == 1


def test_parquet_non_utf8_bytes_and_missing_values(tmp_path):
    pq.write_table(pa.table({"id": pa.array([1, 2, None, 4]), "text": pa.array([b"ok", b"\xc3(", b"x", None],
                                                                                  pa.binary())}), tmp_path / "b.parquet")
    plan = plan_of([tmp_path / "b.parquet"], skip=True, fields=Fields(id_given=True))
    assert [r.id for r in all_records(plan)] == [1]
    reasons = [s["reason"] for s in plan.skipped_rows]
    assert reasons == ["field 'text' is not valid UTF-8 (byte 0xc3 at offset 0)", "has no field 'id'",
                       "has no field 'text'"]


def test_skip_counts_and_unreadable_file_is_skipped_whole(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"id": 1, "text": "good"}, {"id": 2, "text": ""}, {"id": 3, "text": "ok"}])
    (tmp_path / "b.parquet").write_bytes(b"garbage")
    plan = plan_of([tmp_path / "a.jsonl", tmp_path / "b.parquet"], skip=True)
    assert [r.id for r in all_records(plan)] == [1, 3] and plan.skipped == 1
    assert plan.sources[1].skipped.startswith("b.parquet: is not a readable parquet file")
    with pytest.raises(InputError, match="b.parquet: is not a readable parquet file"):
        plan_of([tmp_path / "b.parquet", tmp_path / "a.jsonl"])


def test_duplicates_are_exact_not_hash_equality(tmp_path):
    """5 and 5 + (2**61 - 1) have the same Python hash: a candidate, and the exact pass clears it; a real
    repeat is skipped (only the later occurrence), and the windows count only the rows kept."""
    big = 5 + (2 ** 61 - 1)
    assert hash(5) == hash(big)
    rows = [{"id": 5, "text": "a"}, {"id": big, "text": "b"}, {"id": 7, "text": "c"}, {"id": 5, "text": "d"},
            {"id": 8, "text": "e"}]
    write_jsonl(tmp_path / "h.jsonl", rows)
    plan = plan_of([tmp_path / "h.jsonl"], window=2, skip=True)
    assert [r.id for r in all_records(plan)] == [5, big, 7, 8]
    assert plan.duplicates == {(0, 4)} and plan.windows == 2
    with pytest.raises(RowError, match=r"h.jsonl line 4 \(id 5\): duplicate id 5 \(first at h.jsonl line 1\)"):
        plan_of([tmp_path / "h.jsonl"])


def test_duplicate_before_another_bad_row_is_reported_first(tmp_path):
    write_jsonl(tmp_path / "o.jsonl", [{"id": 1, "text": "a"}, {"id": 1, "text": "b"}, {"id": 3, "text": ""}])
    with pytest.raises(RowError, match="line 2 .*duplicate"):
        plan_of([tmp_path / "o.jsonl"])


def test_ids_across_files_and_row_numbered_files(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "text": "a"}])
    write_jsonl(tmp_path / "b.jsonl", [{"id": "x", "text": "b"}])
    with pytest.raises(RowError, match="b.jsonl line 1 .*first at a.jsonl line 1"):
        plan_of([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    write_jsonl(tmp_path / "n.jsonl", [{"text": "no ids"}, {"text": "here"}])
    plan = plan_of([tmp_path / "n.jsonl"])
    assert [r.id for r in all_records(plan)] == [1, 2] and plan.sources[0].numbered
    with pytest.raises(RowError, match="has no field 'id'"):
        plan_of([tmp_path / "n.jsonl"], fields=Fields(id_given=True))


def test_instruction_field(tmp_path):
    write_jsonl(tmp_path / "i.jsonl", [{"id": 1, "text": "a", "q": "Retrieve"}, {"id": 2, "text": "b", "q": None},
                                       {"id": 3, "text": "c"}])
    plan = plan_of([tmp_path / "i.jsonl"], skip=True, fields=Fields(instruction_field="q"))
    assert [(r.id, r.instruction) for r in all_records(plan)] == [(1, "Retrieve"), (2, None)]
    assert plan.skipped_rows[0]["reason"] == "has no field 'q'"


def test_plan_memory_is_a_few_bytes_per_row(tmp_path):
    """The plan keeps window starts and 8-byte id hashes, not the rows: 20k rows, window 1000."""
    n = 20000
    (tmp_path / "big.txt").write_text("".join(f"line {i} of a synthetic corpus\n" for i in range(n)))
    plan = plan_of([tmp_path / "big.txt"], window=1000)
    assert plan.rows == n and plan.windows == 20 and len(plan.duplicates) == 0
    assert plan.starts[3].offset == sum(len(f"line {i} of a synthetic corpus\n") for i in range(3000))
    assert list(records_from(plan, plan.starts[19]))[-1].text == f"line {n - 1} of a synthetic corpus"
    assert np.all(np.diff([s.pos for s in plan.starts]) == 1000)


def test_errors_cross_process_boundaries_whole():
    """A Ray actor's error is pickled to the driver: it must arrive as the same type and message."""
    import pickle

    from l2v.embed.inputs import InputFile
    from l2v.embed.reader import FileError
    from l2v.errors import JobChangedError, OptionalDependencyError

    errors = [RowError("a.jsonl line 3 (id 'x')", "field 'text' is empty"), JobChangedError("c", hint="h"),
              FileError(InputFile("/x/b.csv", "csv", 1), "cannot be read"), OptionalDependencyError("ray", "ray", "p")]
    for e in errors:
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and str(back) == str(e)
    assert pickle.loads(pickle.dumps(errors[0])).where == "a.jsonl line 3 (id 'x')"
