"""Fixtures of the Python suites: an s3rver like the C++ suites' (tests/backends/s3express), a
Lustre-style file system in a temp dir, and one base URI per backend."""
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

import stor

HERE = os.path.dirname(os.path.abspath(__file__))
S3RVER_JS = os.environ.get("STOR_S3RVER_JS") or os.path.join(
    HERE, "..", "..", "tools", "node", "node_modules", "s3rver", "bin", "s3rver.js")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers_http(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return s.recv(8).startswith(b"HTTP/1.")
    except OSError:
        return False


class S3rver:
    """node's s3rver on a free port with a temp data dir; endpoint and the settings for it."""

    def __init__(self):
        node = shutil.which("node")
        if node is None:
            pytest.skip("node is not installed: the S3 tests need node and s3rver (npm install --prefix tools/node)")
        if not os.path.exists(S3RVER_JS):
            raise RuntimeError(f"s3rver is not installed at {S3RVER_JS}: run npm install --prefix tools/node")
        self.dir = tempfile.mkdtemp(prefix="stor-py-s3rver-")
        self.proc = None
        for _ in range(3):  # a free port can be taken before s3rver binds it
            self.port = _free_port()
            log = open(os.path.join(self.dir, "s3rver.log"), "wb")
            # s3rver's continuation tokens use DES, only in OpenSSL 3's legacy provider.
            self.proc = subprocess.Popen(
                [node, "--openssl-legacy-provider", S3RVER_JS, "-d", os.path.join(self.dir, "data"), "-a",
                 "127.0.0.1", "-p", str(self.port), "--silent"], stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.poll() is None and not _answers_http(self.port):
                time.sleep(0.1)
            if self.proc.poll() is None and _answers_http(self.port):
                time.sleep(0.1)  # still ours? (another server answering on a stolen port leaves ours dead)
                if self.proc.poll() is None:
                    break
            self.proc.kill()
            self.proc.wait()
        else:
            raise RuntimeError("s3rver did not start: " + open(os.path.join(self.dir, "s3rver.log")).read())
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.settings = {"s3.endpoint": self.endpoint, "s3.region": "us-east-1", "s3.access_key": "S3RVER",
                         "s3.secret_key": "S3RVER", "s3.retry_base_ms": "5"}

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def s3rver():
    server = S3rver()
    stor.configure(server.settings)
    yield server
    server.stop()


def unique(stem):
    return f"{stem}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def bucket(s3rver):
    name = unique("pyt")
    stor.create_bucket(f"s3://{name}")
    return name


@pytest.fixture
def lustre_dir(tmp_path):
    fs = tmp_path / "fs"
    stor.mkfs(str(fs), targets=4, stripe_size=64 << 10, stripe_count=4)
    return str(fs)


BACKENDS = ["nvme", "lustre", "s3", "s3express", "tier"]


@pytest.fixture(params=BACKENDS)
def base_uri(request, tmp_path):
    """A directory URI on each backend, empty."""
    kind = request.param
    if kind == "nvme":
        return f"nvme://{tmp_path}"
    if kind == "lustre":
        return "lustre://" + request.getfixturevalue("lustre_dir")
    b = request.getfixturevalue("bucket")
    if kind == "s3":
        return f"s3://{b}/prefix"
    if kind == "s3express":
        return f"s3express://{b}/prefix"
    fast = tmp_path / "linked"
    fast.mkdir()
    stor.link(str(fast), f"s3://{b}/cold")
    return f"tier://{fast}"
