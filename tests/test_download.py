import hashlib
import http.server
import os
import threading
from functools import partial

import pytest
from click.testing import CliRunner

from rnnbench.cli import main
from rnnbench.data import registry
from rnnbench.data.registry import Source
from tests.test_datasets_files import make_imdb_tar


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send_head(self):
        rng = self.headers.get("Range")
        path = self.translate_path(self.path)
        if not rng or not os.path.isfile(path):
            return super().send_head()
        start = int(rng.split("=")[1].split("-")[0])
        data = open(path, "rb").read()
        self.send_response(206)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        import io
        return io.BytesIO(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    make_imdb_tar(root / "aclImdb_v1.tar.gz")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_RangeHandler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", root
    httpd.shutdown()


def _point_imdb_at(monkeypatch, url, sha=None):
    info = registry.REGISTRY["imdb"]
    monkeypatch.setitem(registry.REGISTRY, "imdb", info.__class__(
        **{**info.__dict__, "source": Source(f"{url}/aclImdb_v1.tar.gz", "aclImdb_v1.tar.gz", sha)}))


def test_download_pins_checksum_then_loads(server, monkeypatch):
    url, root = server
    _point_imdb_at(monkeypatch, url)
    r = CliRunner().invoke(main, ["data", "download", "imdb", "--quiet"])
    assert r.exit_code == 0, r.output
    dest = registry.data_home() / "imdb" / "aclImdb_v1.tar.gz"
    assert dest.exists() and (dest.parent / "aclImdb_v1.tar.gz.sha256").read_text().strip() == \
        hashlib.sha256((root / "aclImdb_v1.tar.gz").read_bytes()).hexdigest()
    assert len(registry.load("imdb").train) == 12  # found via the cache, no path given


def test_download_resumes_partial_file(server, monkeypatch):
    url, root = server
    _point_imdb_at(monkeypatch, url)
    full = (root / "aclImdb_v1.tar.gz").read_bytes()
    part = registry.data_home() / "imdb" / "aclImdb_v1.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(full[:100])
    r = CliRunner().invoke(main, ["data", "download", "imdb", "--quiet"])
    assert r.exit_code == 0, r.output
    assert (registry.data_home() / "imdb" / "aclImdb_v1.tar.gz").read_bytes() == full


def test_checksum_mismatch_deletes_and_exits_2(server, monkeypatch):
    url, _ = server
    _point_imdb_at(monkeypatch, url, sha="0" * 64)
    r = CliRunner().invoke(main, ["data", "download", "imdb", "--quiet"])
    assert r.exit_code == 2 and "checksum mismatch" in r.output
    assert not any((registry.data_home() / "imdb").glob("aclImdb_v1.tar.gz*"))


def test_from_registers_a_local_copy(tmp_path):
    tar = make_imdb_tar(tmp_path / "mine.tar.gz")
    r = CliRunner().invoke(main, ["data", "download", "imdb", "--from", str(tar)])
    assert r.exit_code == 0 and "registered imdb" in r.output
    assert len(registry.load("imdb").test) == 12
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(tar.read_bytes()[:300])
    r = CliRunner().invoke(main, ["data", "download", "imdb", "--from", str(bad)])
    assert r.exit_code == 2 and "corrupt or truncated" in r.output
