import csv
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnnbench.cli import main
from tests.helpers import write_config

RNN = {"embed_dim": 16, "hidden_dim": 24, "batch_size": 32, "epochs": 3, "buckets": 2, "learning_rate": 0.01}


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("er")
    cfg = write_config(tmp / "c.yaml", rnn=RNN, data={"synthetic": {"train_size": 1500, "test_size": 200},
                                                      "sizes": [300, 1300]}, experiment={"seeds": [0]})
    r = cli("compare", cfg)
    assert r.exit_code == 0, r.output
    exp = Path(r.output.strip().splitlines()[-1])
    rnn_dir = next(d for d in (exp / "runs").iterdir() if d.name.startswith("rnn-n1300"))
    linear_dir = next(d for d in (exp / "runs").iterdir() if d.name.startswith("linear-"))
    return exp, rnn_dir, linear_dir


@pytest.mark.slow
def test_embed_writes_map_table_and_csv(runs):
    _, rnn_dir, _ = runs
    r = cli("embed", rnn_dir, "--top", 60, "--probe", "good", "--probe", "awful", "--probe", "zzzz")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(rnn_dir / "embeddings.csv")))
    assert len(rows) == 60 and list(rows[0]) == ["token", "frequency", "average_label", "x", "y"]
    freqs = [int(x["frequency"]) for x in rows]
    assert freqs == sorted(freqs, reverse=True)
    labels = {x["token"]: float(x["average_label"]) for x in rows}
    assert 0 <= min(labels.values()) and max(labels.values()) <= 1
    assert labels["."] == pytest.approx(0.5, abs=0.05)  # in every text: the overall label mean
    table = (rnn_dir / "neighbours.md").read_text()
    assert "`good`" in table and "`zzzz` | not in the vocabulary" in table
    assert (rnn_dir / "embeddings.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_embed_bad_input(runs):
    _, rnn_dir, linear_dir = runs
    r = cli("embed", linear_dir)
    assert r.exit_code == 2 and "needs an RNN run" in r.output
    r = cli("embed", rnn_dir, "--top", 100000)
    assert r.exit_code == 2 and "fewer than --top 100000" in r.output


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v for k, v in attrs if k in ("src", "href") and v is not None]


@pytest.mark.slow
def test_report_is_self_contained(runs, tmp_path):
    exp, rnn_dir, _ = runs
    cli("embed", rnn_dir, "--top", 40)
    r = cli("report", exp, rnn_dir, "-o", tmp_path / "r.html")
    assert r.exit_code == 0, r.output
    page = (tmp_path / "r.html").read_text()
    parser = _Links()
    parser.feed(page)
    assert parser.refs and all(ref.startswith(("data:image/png;base64,", "#")) for ref in parser.refs)
    assert parser.tags.count("img") >= 3 and "table" in parser.tags
    assert "rnn vs linear:" in page and "crossover" in page
    assert "versions:" in page and "<summary>config</summary>" in page
    md = (tmp_path / "r.md").read_text()
    assert "learning_curve.png" in md and "## Comparison" in md


def test_report_on_an_empty_directory(tmp_path):
    r = cli("report", tmp_path)
    assert r.exit_code == 2 and "has no results" in r.output
    r = cli("report", tmp_path / "missing")
    assert r.exit_code == 2 and "no such directory" in r.output


def test_report_markdown_is_converted_by_a_markdown_parser():
    """markdown-it-py, CommonMark and tables: what a hand-made converter got wrong (emphasis, links,
    numbered lists, a `|` escaped in a cell, `**` inside code) comes
    out right; raw HTML is shown, not run; headings go two levels down."""
    from rnnbench.report import markdown_to_html

    md = ("# Title\n\nSome *emphasis*, a [link](#x) and `a**b**c`.\nA table:\n\n"
          "| size | rnn |\n|---:|:---|\n| 1,000 | 0.5 \\| 0.6 |\n\n1. first\n2. second\n\n<script>x</script>\n")
    page = markdown_to_html(md)
    assert "<h3>Title</h3>" in page and "<h1>" not in page
    assert "<em>emphasis</em>" in page and '<a href="#x">link</a>' in page and "<code>a**b**c</code>" in page
    assert "<ol>\n<li>first</li>\n<li>second</li>\n</ol>" in page
    assert '<td style="text-align:right">1,000</td>' in page and '<td style="text-align:left">0.5 | 0.6</td>' in page
    assert page.count("<tr>") == 2 and "<th" in page
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
