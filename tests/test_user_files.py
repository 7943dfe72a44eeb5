"""Users' own files (csv, tsv, jsonl, parquet): the layouts people have, class names kept, nothing dropped
silently. Each test writes the file it reads; each case is one that happened with a real public data set."""

import bz2
import csv
import gzip
import io
import json
import lzma
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from rnnbench.cli import main
from rnnbench.config import load_config
from rnnbench.data import load
from rnnbench.data.generic import tsv_quoting
from rnnbench.data.sources import DataFile
from rnnbench.errors import RnnbenchError

CSV = {"text_columns": ["text"], "label_column": "label"}


def reviews(n=600, sep=",", label=lambda i: "pos" if i % 2 else "neg") -> str:
    return f"text{sep}label\n" + "".join(f"review {i} was {'good' if i % 2 else 'bad'}{sep}{label(i)}\n" for i in range(n))


def n_rows(c) -> int:
    return len(c.train) + len(c.test)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# ------------------------------------------------------------------------------ formats


@pytest.mark.parametrize("suffix, opener", [(".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open)])
def test_compressed_csv_reads_as_the_plain_file(tmp_path, suffix, opener):
    with opener(tmp_path / f"r.csv{suffix}", "wt") as f:
        f.write(reviews())
    c = load("csv", str(tmp_path / f"r.csv{suffix}"), **CSV)
    assert n_rows(c) == 600 and c.report.read["train"] == 600 and not c.report.dropped
    assert c.task.classes == ("neg", "pos")


def test_a_compressed_file_is_known_by_its_bytes_not_its_name(tmp_path):
    (tmp_path / "r.csv").write_bytes(gzip.compress(reviews().encode()))  # gzip named .csv
    assert n_rows(load("csv", str(tmp_path / "r.csv"), **CSV)) == 600


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_zipped_csv_is_never_read_as_text(tmp_path, method):
    """A deflated zip was read as binary "columns"; a stored one gave 382 of 600 rows with the archive's
    headers glued on. Both give the member's 600 rows."""
    with zipfile.ZipFile(tmp_path / "r.zip", "w", method) as z:
        z.writestr("reviews.csv", reviews())
    c = load("csv", str(tmp_path / "r.zip"), **CSV)
    assert n_rows(c) == 600 and not c.report.dropped and not any("PK" in t for t in c.train.texts)


def test_zip_with_several_files_needs_member(tmp_path):
    with zipfile.ZipFile(tmp_path / "two.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data/train.csv", reviews(100))
        z.writestr("README.csv", "text,label\nx,y\n")
        z.writestr("__MACOSX/data/._train.csv", "junk")
    with pytest.raises(RnnbenchError, match=r"holds 2 files \(data/train.csv, README.csv\): name the one to read "
                                            r"with data.member"):
        load("csv", str(tmp_path / "two.zip"), **CSV)
    assert n_rows(load("csv", str(tmp_path / "two.zip"), member="train.csv", **CSV)) == 100  # by its name
    assert n_rows(load("csv", str(tmp_path / "two.zip"), member="data/train.csv", **CSV)) == 100  # by its path
    with pytest.raises(RnnbenchError, match="data.member: no 'test.csv' in .*two.zip"):
        load("csv", str(tmp_path / "two.zip"), member="test.csv", **CSV)
    (tmp_path / "plain.csv").write_text(reviews(10))
    with pytest.raises(RnnbenchError, match="data.member: .*plain.csv is not a zip or tar archive"):
        load("csv", str(tmp_path / "plain.csv"), member="x.csv", **CSV)


def test_tarball_member_and_zipped_gzip(tmp_path):
    data = reviews(50).encode()
    with tarfile.open(tmp_path / "r.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("folder/r.csv")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert n_rows(load("csv", str(tmp_path / "r.tar.gz"), **CSV)) == 50
    with zipfile.ZipFile(tmp_path / "gz.zip", "w") as z:
        z.writestr("r.csv.gz", gzip.compress(data))
    assert n_rows(load("csv", str(tmp_path / "gz.zip"), **CSV)) == 50


@pytest.mark.parametrize("content, message", [
    (b"PK\x03\x04" + b"\x00" * 40, "corrupt or truncated archive"),
    (b"PAR1" + b"\x00" * 40, "is a Parquet file: set data.dataset: parquet"),
    (b"7z\xbc\xaf\x27\x1c" + b"\x00" * 40, "7z archive"),
    (b"\xff\xfet\x00e\x00x\x00t\x00", "UTF-16 text: save it as UTF-8"),
    (b"text,label\n\x00\x01\x02", "not text: it holds NUL bytes"),
    (b"", "empty file"),
    (gzip.compress(b""), "empty file"),
])
def test_files_that_are_not_text_say_what_they_are(tmp_path, content, message):
    (tmp_path / "d.csv").write_bytes(content)
    with pytest.raises(RnnbenchError, match=message):
        load("csv", str(tmp_path / "d.csv"), **CSV)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_an_empty_file_says_empty_file(tmp_path, fmt):
    (tmp_path / f"empty.{fmt}").write_bytes(b"")
    with pytest.raises(RnnbenchError, match=f"cannot read .*empty.{fmt}: empty file"):
        load(fmt, str(tmp_path / f"empty.{fmt}"), **CSV)


@pytest.mark.parametrize("sep, shown", [(";", "';'"), ("|", "'|'"), ("\t", '"\\\\t"')])
def test_delimiter_option_and_the_hint_when_it_is_missing(tmp_path, sep, shown):
    (tmp_path / "export.csv").write_text(reviews(100, sep=sep))
    with pytest.raises(RnnbenchError, match=f"no column 'text' .*seems to use {shown} as its delimiter: set "
                                            f"data.delimiter: {shown}"):
        load("csv", str(tmp_path / "export.csv"), **CSV)
    c = load("csv", str(tmp_path / "export.csv"), delimiter=sep, **CSV)
    assert n_rows(c) == 100 and c.train.texts[0].startswith("review")
    with pytest.raises(RnnbenchError, match="data.delimiter: one character"):
        load("csv", str(tmp_path / "export.csv"), delimiter=";;", **CSV)
    with pytest.raises(RnnbenchError, match="data.delimiter is for csv and tsv files, not jsonl"):
        load("jsonl", str(tmp_path / "export.csv"), delimiter=sep, **CSV)


def _sentences(n=1000, quote_every=40) -> tuple[str, list[str]]:
    """A headerless `sentence<TAB>label` file whose texts hold unbalanced double quotes, as in a real one."""
    texts = []
    for i in range(n):
        t = f"sentence {i} is fine"
        if i % quote_every == 3:
            t = f'"quoted start {i} with no end'
        elif i % quote_every == 17:
            t = f'he said "wow {i}" twice'
        texts.append(t)
    return "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(texts)), texts


def test_tsv_with_unbalanced_quotes_reads_every_row(tmp_path):
    """Read with CSV quoting, a real TSV of 1,000 sentences came back as 748 rows, with no warning. A tsv
    is read with quoting none (quotes are text) unless its quoted fields are CSV-quoted."""
    body, texts = _sentences()
    (tmp_path / "s.txt").write_text(body)
    c = load("tsv", str(tmp_path / "s.txt"), columns=["text", "label"], test_fraction=0.2, **CSV)
    assert n_rows(c) == 1000 and not c.report.dropped
    assert sorted(c.train.texts + c.test.texts) == sorted(texts)
    assert any("read with quoting none" in n for n in c.report.notes)
    # asked for CSV quoting, the rows merge, and a warning counts the rows that swallowed others
    merged = load("tsv", str(tmp_path / "s.txt"), columns=["text", "label"], quoting="csv", **CSV)
    assert n_rows(merged) < 1000
    assert len(merged.report.warnings) == 1 and "set data.quoting: none" in merged.report.warnings[0]
    n_suspect = int(merged.report.warnings[0].split(": ")[1].split(" row")[0])
    assert n_suspect == sum(1 for t in merged.train.texts + merged.test.texts if "\n" in t)
    assert n_suspect > 0
    # a csv with a text that opens a quote it never closes: the same warning
    (tmp_path / "q.csv").write_text("text,label\n" + "".join(
        ('"' if i == 5 else "") + f"text {i},{i % 2}\n" for i in range(50)))
    c = load("csv", str(tmp_path / "q.csv"), **CSV)
    assert c.report.warnings and "1 row(s) hold a line break" in c.report.warnings[0]


def test_tsv_written_with_csv_quoting_is_read_as_written(tmp_path):
    """pandas and Python's csv module quote a TSV's fields that hold quotes, tabs or line ends: such a file is
    read with CSV quoting, so its texts come back as they were."""
    texts = [f'text {i} says "hi"\tand tabs' if i % 3 == 0 else f"plain {i}" for i in range(60)]
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(["text", "label"])
    w.writerows([t, i % 2] for i, t in enumerate(texts))
    (tmp_path / "q.tsv").write_text(buf.getvalue())
    assert tsv_quoting(DataFile(tmp_path / "q.tsv", "q.tsv"), None) == "csv"
    c = load("tsv", str(tmp_path / "q.tsv"), **CSV)
    assert sorted(c.train.texts + c.test.texts) == sorted(texts)
    assert any("read with CSV quoting" in n for n in c.report.notes)
    forced = load("tsv", str(tmp_path / "q.tsv"), quoting="none", **CSV)
    assert forced.report.dropped == {"malformed row": 20}  # the texts' tabs split their rows: counted


def test_headerless_file_hint_and_columns(tmp_path):
    body, _ = _sentences(100)
    (tmp_path / "s.tsv").write_text(body)
    with pytest.raises(RnnbenchError, match="first row looks like data, not a header: .*data.columns"):
        load("tsv", str(tmp_path / "s.tsv"), text_columns=["sentence"], label_column="label")
    with pytest.raises(RnnbenchError, match=r"data.columns \['a', 'b'\] has no column 'text'"):
        load("tsv", str(tmp_path / "s.tsv"), columns=["a", "b"], **CSV)


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"text": [f"review {i}" for i in range(40)] + [None, ""],
                      "stars": [1 + i % 5 for i in range(40)] + [3, 4]})
    pq.write_table(table, tmp_path / "r.parquet")
    c = load("parquet", str(tmp_path / "r.parquet"), text_columns=["text"], label_column="stars",
             task_kind="multiclass")
    assert n_rows(c) == 40 and c.report.dropped == {"empty text": 2}
    assert c.task.classes == ("1", "2", "3", "4", "5")
    with zipfile.ZipFile(tmp_path / "r.zip", "w") as z:  # zipped: read whole
        z.write(tmp_path / "r.parquet", "r.parquet")
    assert n_rows(load("parquet", str(tmp_path / "r.zip"), text_columns=["text"], label_column="stars",
                       task_kind="multiclass")) == 40
    with pytest.raises(RnnbenchError, match="no column 'body'"):
        load("parquet", str(tmp_path / "r.parquet"), text_columns=["body"], label_column="stars")
    (tmp_path / "r.csv").write_text(reviews(10))
    with pytest.raises(RnnbenchError, match="r.csv is not a Parquet file"):
        load("parquet", str(tmp_path / "r.csv"), **CSV)


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    (tmp_path / "r.parquet").write_bytes(b"PAR1" + b"\x00" * 20 + b"PAR1")
    with pytest.raises(RnnbenchError, match=r"needs pyarrow: pip install 'rnnbench\[parquet\]'"):
        load("parquet", str(tmp_path / "r.parquet"), **CSV)


# ------------------------------------------------------------------------------ several files


def test_folder_glob_and_list(tmp_path):
    """A folder gave `[Errno 21] Is a directory`; now it, a glob and a list give their files' rows."""
    folder = tmp_path / "parts"
    folder.mkdir()
    for k in range(3):
        (folder / f"part{k}.csv").write_text(reviews(20))
    (folder / "README.md").write_text("not data")
    (folder / "readme.csv").write_text("not data either")
    c = load("csv", str(folder), **CSV)
    assert n_rows(c) == 60 and any("README.md, readme.csv" in n for n in c.report.notes)
    assert any("rows read per file: part0.csv 20, part1.csv 20, part2.csv 20" in n for n in c.report.notes)
    assert n_rows(load("csv", str(folder / "part[01].csv"), **CSV)) == 40
    assert n_rows(load("csv", [str(folder / "part0.csv"), str(folder / "part2.csv")], **CSV)) == 40
    with pytest.raises(RnnbenchError, match="no file matches"):
        load("csv", str(folder / "*.tsv"), **CSV)
    with pytest.raises(RnnbenchError, match=r"no \.csv file in folder"):
        load("csv", str(_empty(tmp_path)), **CSV)


def _empty(tmp_path):
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "notes.txt").write_text("x")
    return tmp_path / "nothing"


def test_one_file_per_class_label_from_path(tmp_path):
    """rt-polarity's layout: one snippet a line, one file per class; a tab in a text is text."""
    for pol in ("pos", "neg"):
        (tmp_path / f"rt-polarity.{pol}").write_text("".join(f"{pol} snippet {i}\twith a tab\n" for i in range(30)))
    (tmp_path / "README").write_text("about")
    c = load("tsv", str(tmp_path), columns=["text"], text_columns=["text"], label_from_path=r"rt-polarity\.(pos|neg)$")
    assert n_rows(c) == 60 and c.task.classes == ("neg", "pos") and not c.report.dropped
    assert all(t.startswith(c.task.classes[y]) and "\twith a tab" in t for t, y in zip(c.train.texts, c.train.y))
    for bad, message in ((r"rt-polarity\.pos|neg", "needs exactly one group"), (r"(pos", "not a regular expression")):
        with pytest.raises(RnnbenchError, match=f"data.label_from_path: {message}"):
            load("tsv", str(tmp_path), columns=["text"], text_columns=["text"], label_from_path=bad)
    with pytest.raises(RnnbenchError, match="does not match .*README: every file needs its label"):
        load("tsv", [str(tmp_path / "rt-polarity.pos"), str(tmp_path / "README")], columns=["text"],
             text_columns=["text"], label_from_path=r"rt-polarity\.(pos|neg)$")
    with pytest.raises(RnnbenchError, match="label_column and data.label_from_path both"):
        load("tsv", str(tmp_path), columns=["text"], label_from_path="(x)", **CSV)


# ------------------------------------------------------------------------------ labels


def test_label_map_names_classes_and_counts_what_it_drops(tmp_path):
    (tmp_path / "stars.csv").write_text(reviews(100, label=lambda i: str(1 + i % 5)) + "extra,7\n")
    c = load("csv", str(tmp_path / "stars.csv"), label_map={"1": "neg", "2": "neg", "3": None, "4": "pos", "5": "pos"},
             **CSV)
    assert c.task.classes == ("neg", "pos") and c.task.kind == "binary"
    assert c.report.dropped == {"label mapped to null": 20, "label not in data.label_map": 1}
    assert any("'7' (1)" in n for n in c.report.notes) and n_rows(c) == 80
    # numbers match numerically (a YAML key 1 is "1"; a file may say 1.0), and the map's order is the classes'
    (tmp_path / "f.csv").write_text("text,label\n" + "".join(f"t {i},{i % 2}.0\n" for i in range(20)))
    c = load("csv", str(tmp_path / "f.csv"), label_map={"1": "yes", "0": "no"}, **CSV)
    assert c.task.classes == ("yes", "no") and n_rows(c) == 20
    reg = load("csv", str(tmp_path / "stars.csv"), task_kind="regression", label_map={"1": 0.0, "5": 1.0}, **CSV)
    assert reg.task.is_regression and set(np.concatenate([reg.train.y, reg.test.y])) == {0.0, 1.0}
    with pytest.raises(RnnbenchError, match="data.label_map: regression needs numbers"):
        load("csv", str(tmp_path / "stars.csv"), task_kind="regression", label_map={"1": "neg"}, **CSV)


def test_numbers_with_a_few_words_are_an_error_not_extra_classes(tmp_path):
    """With task_kind multiclass, "five" and "N/A" among star numbers silently became two more classes."""
    (tmp_path / "stars.csv").write_text(reviews(100, label=lambda i: str(1 + i % 5)) + "a,five\nb,five\nc,N/A\n")
    with pytest.raises(RnnbenchError, match=r"label column 'label' holds numbers \(100 rows\) and 3 that are not: "
                                            r"'five' \(2\), 'N/A' \(1\); map every value in data.label_map"):
        load("csv", str(tmp_path / "stars.csv"), task_kind="multiclass", **CSV)
    stars = {str(k): str(k) for k in range(1, 6)} | {"five": "5", "N/A": None}
    c = load("csv", str(tmp_path / "stars.csv"), task_kind="multiclass", label_map=stars, **CSV)
    assert c.task.classes == ("1", "2", "3", "4", "5") and n_rows(c) == 102
    assert c.report.dropped == {"label mapped to null": 1}


def test_empty_labels_and_test_labels_unseen_in_training_are_counted(tmp_path):
    (tmp_path / "tr.csv").write_text(reviews(40) + "no label,\n")
    (tmp_path / "te.csv").write_text(reviews(10) + "odd,maybe\n")
    c = load("csv", str(tmp_path / "tr.csv"), test_path=str(tmp_path / "te.csv"), **CSV)
    assert c.report.dropped == {"empty label": 1, "label not in the training file": 1}
    assert (len(c.train), len(c.test)) == (40, 10)


def test_more_than_two_classes_without_task_kind_is_multiclass(tmp_path):
    (tmp_path / "s.csv").write_text(reviews(60, label=lambda i: "abc"[i % 3]))
    c = load("csv", str(tmp_path / "s.csv"), **CSV)
    assert c.task.kind == "multiclass" and c.task.classes == ("a", "b", "c")
    with pytest.raises(RnnbenchError, match="task_kind binary but column 'label' has 3 classes"):
        load("csv", str(tmp_path / "s.csv"), task_kind="binary", **CSV)


# ------------------------------------------------------------------------------ honest reporting


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_non_utf8_bytes_are_counted(tmp_path, fmt):
    rows = [(f"caf\xe9 {i}" if i % 10 == 0 else f"cafe {i}", i % 2) for i in range(50)]
    if fmt == "jsonl":
        body = "".join(json.dumps({"text": "@@" + str(i), "label": y}) + "\n" for i, (_, y) in enumerate(rows))
        data = body.encode()
        for i, (t, _) in enumerate(rows):  # raw Latin-1 bytes inside the JSON strings
            data = data.replace(f'"@@{i}"'.encode(), b'"' + t.encode("latin-1") + b'"')
    else:
        sep = "," if fmt == "csv" else "\t"
        data = (f"text{sep}label\n" + "".join(f"{t}{sep}{y}\n" for t, y in rows)).encode("latin-1")
    (tmp_path / f"d.{fmt}").write_bytes(data)
    c = load(fmt, str(tmp_path / f"d.{fmt}"), **CSV)
    assert c.report.non_utf8 == 5 and "5 text(s) had non-UTF-8 bytes" in c.report.summary()
    texts = c.train.texts + c.test.texts
    assert sum("\ufffd" in t for t in texts) == 5 and not any("\udce9" in t for t in texts)


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path):
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + reviews(20).encode())
    assert n_rows(load("csv", str(tmp_path / "excel.csv"), **CSV)) == 20


# ------------------------------------------------------------------------------ end to end: train, predict, compare


def _experiment(tmp_path, **data) -> Path:
    (tmp_path / "stars.csv").write_text("text,label\n" + "".join(
        f"{'a lovely great film' if i % 5 >= 3 else 'an awful dull film'} number {i},{1 + i % 5}\n"
        for i in range(300)) + "caf\xe9 film,5\n", encoding="latin-1")
    cfg = {"experiment": {"name": "mine", "output_dir": str(tmp_path / "runs"), "seeds": [0]},
           "data": {"dataset": "csv", "path": str(tmp_path / "stars.csv"), "text_columns": ["text"],
                    "label_column": "label", "label_map": {1: "neg", 2: "neg", 3: None, 4: "pos", 5: "pos"},
                    "sizes": [100], **data},
           "linear": {"min_df": [1], "C": [1.0]}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "c.yaml"


def test_class_names_and_the_load_report_end_to_end(tmp_path):
    cfg = _experiment(tmp_path)
    r = cli("train", cfg)
    assert r.exit_code == 0, r.output
    assert "data: csv: read 301 rows; dropped 60 (label mapped to null); 1 text(s) had non-UTF-8 bytes" in r.stderr
    assert "classes: neg, pos" in r.stdout
    run_dir = r.stdout.strip().splitlines()[-1]
    result = json.loads((Path(run_dir) / "result.json").read_text())
    assert result["classes"] == ["neg", "pos"]
    assert result["data"]["dropped"] == {"label mapped to null": 60} and result["data"]["non_utf8"] == 1
    assert result["data"]["read"] == {"train": 301} and result["data"]["summary"].startswith("read 301 rows")
    p = cli("predict", run_dir, "a lovely great film", "an awful dull film")
    assert p.exit_code == 0, p.output
    assert [line.split("\t")[0] for line in p.stdout.splitlines()] == ["pos", "neg"]
    # --file: bytes that are not UTF-8 and empty lines are reported, not a traceback
    (tmp_path / "texts.txt").write_bytes(b"a lovely great film\n\ncaf\xe9 dull film\n   \n")
    p = cli("predict", run_dir, "--file", tmp_path / "texts.txt", "--proba")
    assert p.exit_code == 0, p.output
    assert p.stdout.splitlines()[0] == "label\tp(neg)\tp(pos)\ttext"
    assert len(p.stdout.splitlines()) == 3 and p.stdout.splitlines()[2].split("\t")[3] == "caf\ufffd dull film"
    assert "skipped 2 empty line(s) (line 2, 4)" in p.stderr and "1 line(s) had bytes that are not UTF-8" in p.stderr
    # an experiment folder: its runs are listed
    for folder in (tmp_path / "runs" / "mine", tmp_path / "runs" / "mine" / "runs"):
        p = cli("predict", folder, "x")
        assert p.exit_code == 2 and len(p.output.strip().splitlines()) == 1, p.output
        assert "is an experiment folder, not a run: give one of its 1 runs (1 finished): " in p.output
        assert Path(run_dir).name in p.output


def test_compare_prints_the_load_report_once(tmp_path):
    cfg = _experiment(tmp_path, sizes=[50, 100])
    r = cli("compare", cfg, "--models", "linear", "--set", "experiment.seeds=[0,1]")
    assert r.exit_code == 0, r.output
    assert r.stderr.count("data: csv: read 301 rows") == 1


def test_bad_label_input_writes_nothing(tmp_path):
    cfg = _experiment(tmp_path, label_map=None, task_kind="binary")
    r = cli("train", cfg)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "task_kind binary but column 'label' has 5 classes" in r.output
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------ run folders stay put

# the data keys a run's hash held before the options for users' files existed
OLD_DATA_KEYS = {"dataset", "path", "task", "text_columns", "label_column", "task_kind", "test_path",
                 "test_fraction", "val_fraction", "val_max", "max_len", "keep", "min_votes", "synthetic"}


def test_new_data_options_at_their_defaults_leave_run_folders_where_they_were(tmp_path):
    from rnnbench.runs import Run, run_spec

    cfg = load_config(_experiment(tmp_path), ["data.label_map=null"])
    assert set(run_spec(cfg, "rnn", 100, 0)["data"]) == OLD_DATA_KEYS
    base = Run.for_config(cfg, "linear", 100, 0).path
    moved = {Run.for_config(cfg.replace(**{k: v}), "linear", 100, 0).path for k, v in (
        ("data.delimiter", ";"), ("data.quoting", "none"), ("data.columns", ["text", "label"]),
        ("data.member", "x.csv"), ("data.label_map", {"1": "a"}), ("data.label_from_path", "(x)"))}
    assert len(moved) == 6 and base not in moved
    # a tsv read CSV-quoted, as every tsv was before data.quoting: the same folder; read with quoting none: another
    (tmp_path / "quoted.tsv").write_text('text\tlabel\n"a ""b"" c"\t1\nplain\t0\n')
    (tmp_path / "text.tsv").write_text('text\tlabel\nhe said "hi\t1\nplain\t0\n')
    for name, hashed in (("quoted.tsv", None), ("text.tsv", "none")):
        spec = run_spec(cfg.replace(**{"data.dataset": "tsv", "data.path": str(tmp_path / name)}), "rnn", 100, 0)
        assert spec["data"].get("quoting") == hashed
    explicit = run_spec(cfg.replace(**{"data.dataset": "tsv", "data.path": str(tmp_path / "quoted.tsv"),
                                       "data.quoting": "csv"}), "rnn", 100, 0)
    assert "quoting" not in explicit["data"]


def test_a_glob_or_list_counts_by_its_files_names_and_contents(tmp_path):
    from rnnbench.runs import Run

    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        for k in range(2):
            (tmp_path / where / f"part{k}.csv").write_text(reviews(30))
    cfg = load_config(_experiment(tmp_path), ["data.label_map=null"])

    def folder(path):
        return Run.for_config(cfg.replace(**{"data.path": path}), "linear", 100, 0).path

    assert folder(str(tmp_path / "a" / "*.csv")) == folder(str(tmp_path / "b" / "*.csv"))
    assert folder([str(tmp_path / "a" / "part0.csv")]) == folder([str(tmp_path / "b" / "part0.csv")])
    before = folder(str(tmp_path / "a" / "*.csv"))
    (tmp_path / "a" / "part1.csv").write_text(reviews(31))
    assert folder(str(tmp_path / "a" / "*.csv")) != before


def test_results_stored_before_class_names_still_read(tmp_path):
    from rnnbench.runs import RunResult

    old = {"model": "linear", "size": 100, "seed": 0, "status": "ok", "task": {"name": "label", "kind": "binary",
                                                                             "n_classes": 2}}
    r = RunResult.from_dict(old)
    assert r.classes == [] and r.data == {}
    assert RunResult.from_dict(json.loads(json.dumps(RunResult(model="linear", size=1, seed=0, classes=["a", "b"],
                                                               data={"read": {"all": 3}}).to_dict()))).classes == ["a", "b"]


# ------------------------------------------------------------------------------ configs/examples

EXAMPLES = Path(__file__).resolve().parents[1] / "configs" / "examples"
ON_SHARED_DATA = {"csv-label-map.yaml": "womens-clothing-reviews/womens_clothing_ecommerce_reviews.csv",
                  "tsv-with-header.yaml": "sst2/train.tsv", "one-file-per-class.yaml": "rt-polarity"}


def _example_files(tmp_path: Path, name: str) -> dict:
    """A small file in the example's layout, and the overrides that point the example at it."""
    def rows(n, first, second, sep=","):
        return "".join(f"text {i} is {'good' if i % 2 else 'bad'}{sep}{first(i)}{sep}{second(i)}\n" for i in range(n))

    if name == "zipped-csv.yaml":
        with zipfile.ZipFile(tmp_path / "r.zip", "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("reviews.csv", "review,sentiment\n" + "".join(f"r {i},{'pos' if i % 2 else 'neg'}\n"
                                                                      for i in range(60)))
            z.writestr("README.txt", "about")
        return {"data.path": str(tmp_path / "r.zip")}
    if name == "semicolon-csv.yaml":
        (tmp_path / "e.csv").write_bytes(b"\xef\xbb\xbftitle;comment;category\n" + "".join(
            f"t{i};comment {i};{'abc'[i % 3]}\n" for i in range(60)).encode())
        return {"data.path": str(tmp_path / "e.csv")}
    if name == "tsv-no-header.yaml":
        (tmp_path / "s.txt").write_text(_sentences(100)[0])
        return {"data.path": str(tmp_path / "s.txt")}
    if name == "many-files.yaml":
        (tmp_path / "exports" / "holdout").mkdir(parents=True)
        for part, n in (("2024-01", 30), ("2025-02", 30), ("holdout/h", 20)):
            with gzip.open(tmp_path / "exports" / f"{part}.csv.gz", "wt") as f:
                f.write("subject,body,queue\n" + "".join(f"s{i},body {i},{'xyz'[i % 3]}\n" for i in range(n)))
        return {"data.path": [str(tmp_path / "exports" / "202?-*.csv.gz")],
                "data.test_path": str(tmp_path / "exports" / "holdout" / "*.csv.gz")}
    if name == "jsonl.yaml":
        with gzip.open(tmp_path / "r.jsonl.gz", "wt") as f:
            f.write("".join(json.dumps({"summary": f"s{i}", "reviewText": f"text {i}", "overall": 1.0 + i % 5,
                                        "asin": f"p{i % 7}"}) + "\n" for i in range(70)))
        return {"data.path": str(tmp_path / "r.jsonl.gz")}
    if name == "json-api.yaml":
        (tmp_path / "responses").mkdir()
        for page in range(3):
            reviews = [{"content": {"text": f"review {page}-{i}"}, "author": {"name": f"a{i % 6}"},
                        "language": "english", "stars": 5 if i % 2 else 1} for i in range(20)]
            (tmp_path / "responses" / f"p{page}.json").write_text(json.dumps({"success": 1, "reviews": reviews}))
        return {"data.path": str(tmp_path / "responses")}
    if name == "parquet.yaml":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        for split, n in (("train", 60), ("test", 20)):
            pq.write_table(pa.table({"text": [f"t {i}" for i in range(n)], "label": [i % 2 for i in range(n)]}),
                           tmp_path / f"{split}.parquet")
        return {"data.path": str(tmp_path / "train.parquet"), "data.test_path": str(tmp_path / "test.parquet")}
    raise AssertionError(f"no test file for {name}: add one here")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_open_with_their_command_and_read_their_layout(tmp_path, path):
    assert path.read_text().startswith(f"# rnnbench data info --config configs/examples/{path.name}\n")
    cfg = load_config(path)
    assert cfg.data.dataset in ("csv", "tsv", "json", "jsonl", "parquet") and cfg.data.sizes == sorted(cfg.data.sizes)
    if path.name in ON_SHARED_DATA:
        return  # read in the next test, on the real file
    from rnnbench.experiment import load_corpus

    corpus = load_corpus(cfg.replace(**_example_files(tmp_path, path.name)))
    assert len(corpus.train) >= 40 and not corpus.report.dropped and not corpus.report.warnings


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(ON_SHARED_DATA))
def test_example_configs_on_the_real_files(shared, name):
    from rnnbench.experiment import load_corpus

    cfg = load_config(EXAMPLES / name, [f"data.path={shared / ON_SHARED_DATA[name]}"])
    corpus = load_corpus(cfg)
    assert corpus.task.classes == ("neg", "pos") and not corpus.report.warnings
    assert len(corpus.train) > cfg.data.sizes[-1]
