"""The stor module on every backend: file objects, buffers, async reads, namespace calls, errors."""
import io
import os
import pickle
import threading

import numpy as np
import pytest

import stor
from stor import _errors

DATA = os.urandom(3 * (1 << 20) + 12345)  # several S3 parts, and an odd tail


def test_round_trip_and_listing(base_uri):
    uri = stor.join(base_uri, "dir/a.bin")
    if not base_uri.startswith(("s3", "tier")):
        stor.mkdir(stor.join(base_uri, "dir"))
    with stor.open(uri, "wb") as f:
        for i in range(0, len(DATA), 1 << 20):  # several writes through the buffered writer
            f.write(DATA[i:i + (1 << 20)])
    st = stor.stat(uri)
    assert st.size == len(DATA) and st.is_file()
    with stor.open(uri, "rb") as f:
        assert isinstance(f, io.BufferedIOBase) and isinstance(f.raw, io.RawIOBase)
        assert f.read(10) == DATA[:10]
        f.seek(-5, io.SEEK_END)
        assert f.read() == DATA[-5:]
    assert stor.read_bytes(uri) == DATA
    assert stor.listdir(stor.join(base_uri, "dir")) == ["a.bin"]
    walked = list(stor.walk(base_uri))
    assert walked[0] == (base_uri, ["dir"], []) or walked[0][1] == ["dir"]
    assert (stor.join(base_uri, "dir"), [], ["a.bin"]) in walked
    stor.remove(uri)
    assert not stor.exists(uri)
    with pytest.raises(FileNotFoundError):
        stor.open(uri, "rb")


def test_readinto_fills_any_writable_buffer_in_place(base_uri):
    import torch
    uri = stor.join(base_uri, "buf.bin")
    stor.write_bytes(uri, DATA)
    with stor.open(uri, "rb", buffering=0) as f:
        arr = np.zeros(len(DATA), dtype=np.uint8)
        addr = arr.ctypes.data
        assert f.readinto(arr) == len(DATA)
        assert arr.ctypes.data == addr and arr.tobytes() == DATA
        t = torch.zeros(1 << 20, dtype=torch.uint8)
        assert f.preadinto(t.numpy(), 100) == 1 << 20
        assert bytes(t.numpy()) == DATA[100:100 + (1 << 20)]
        ba = bytearray(4096)
        f.seek(len(DATA) - 100)
        assert f.readinto(ba) == 100 and bytes(ba[:100]) == DATA[-100:]
        assert f.readinto(ba) == 0  # end of file
        f32 = np.zeros(256, dtype=np.float32)  # a non-byte dtype: filled by bytes, 1 KiB
        assert f.preadinto(f32, 0) == 1024 and f32.tobytes() == DATA[:1024]
        with pytest.raises(BufferError):  # what the buffer protocol says of read-only memory
            f.readinto(b"immutable")


def test_split_reads_add_up_to_end_of_file(base_uri):
    big = os.urandom((9 << 20) + 5)
    uri = stor.join(base_uri, "split.bin")
    stor.write_bytes(uri, big)
    with stor.open(uri, "rb", buffering=0) as f:
        f.set_read_pieces(4)  # at most 4 MiB-or-larger pieces: 3 requests for 9 MiB
        buf = bytearray(len(big) + 4096)
        assert f.readinto(buf) == len(big) and bytes(buf[:len(big)]) == big
        # Short at the end: the pieces past end of file read nothing.
        assert f.preadinto(buf, 1 << 20) == len(big) - (1 << 20)
        assert bytes(buf[:len(big) - (1 << 20)]) == big[1 << 20:]


def test_raw_readinto_keeps_the_position_and_checks_the_file(tmp_path):
    # A readable stor.File's readinto is native and moves the native position that seek, tell
    # and read share; it refuses closed, write-only and pre-fork files like the other calls.
    path = str(tmp_path / "pos.bin")
    stor.write_bytes(path, DATA)
    buf = bytearray(1000)
    with stor.open(path, "rb", buffering=0) as f:
        assert f.readinto(buf) == 1000 and f.tell() == 1000 and bytes(buf) == DATA[:1000]
        assert f.read(10) == DATA[1000:1010] and f.tell() == 1010
        f.seek(-500, io.SEEK_END)
        assert f.readinto(buf) == 500 and bytes(buf[:500]) == DATA[-500:] and f.tell() == len(DATA)
        assert f.readinto(buf) == 0 and f.tell() == len(DATA)
        f.seek(3)
        assert f.read(2) == DATA[3:5]  # io.RawIOBase.read goes through readinto
        readinto = f.readinto
    with pytest.raises(ValueError, match="closed"):
        readinto(buf)  # the function outlives the file object's open state
    with pytest.raises(io.UnsupportedOperation):
        with stor.open(str(tmp_path / "w.bin"), "wb", buffering=0) as w:
            w.readinto(buf)
    with stor.open(path, "rb", buffering=0) as f:
        pid = os.fork()
        if pid == 0:  # the child: the parent's file refuses, a file opened here works
            code = 1
            try:
                try:
                    f.readinto(buf)
                except ValueError as e:
                    if "another process" in str(e):
                        with stor.open(path, "rb", buffering=0) as g:
                            code = 0 if g.readinto(buf) == 1000 and bytes(buf) == DATA[:1000] else 3
                    else:
                        code = 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert f.readinto(buf) == 1000  # the parent's file still works


def test_async_reads_keep_many_requests_in_flight(base_uri):
    uri = stor.join(base_uri, "async.bin")
    stor.write_bytes(uri, DATA)
    with stor.open(uri, "rb", buffering=0) as f:
        futures = [(off, f.read_async(off, 65536)) for off in range(0, len(DATA), 65536)]
        for off, fut in futures:
            assert bytes(fut.result()) == DATA[off:off + 65536]
        bufs = [bytearray(1000) for _ in range(16)]
        futs = [f.readinto_async(b, i * 1000) for i, b in enumerate(bufs)]
        assert [x.result() for x in futs] == [1000] * 16
        assert b"".join(bufs) == DATA[:16000]
        assert futs[0].done()
        f.read_async(0, 10)  # dropped unread: closing waits for it


def test_reads_release_the_gil(tmp_path):
    # A thread spinning in Python keeps running while another thread waits on stor.
    import time
    fut_started = threading.Event()
    count = [0]

    def spin():
        fut_started.wait()
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    path = str(tmp_path / "gil.bin")
    stor.write_bytes(path, os.urandom(64 << 20))
    try:
        with stor.open(path, "rb", buffering=0) as f:
            buf = bytearray(64 << 20)
            fut_started.set()
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                f.preadinto(buf, 0)
                f.seek(0)
                f.readinto(buf)
    finally:
        t.join()
    assert count[0] > 1000


def test_copy_across_backends(base_uri, tmp_path):
    src = f"nvme://{tmp_path}/src.bin"
    stor.write_bytes(src, DATA)
    dst = stor.join(base_uri, "copied.bin")
    assert stor.copy(src, dst) == len(DATA)
    assert stor.read_bytes(dst) == DATA
    back = f"nvme://{tmp_path}/back.bin"
    assert stor.copy(dst, back) == len(DATA)
    assert open(f"{tmp_path}/back.bin", "rb").read() == DATA
    with pytest.raises(FileNotFoundError):
        stor.copy(stor.join(base_uri, "missing"), back)


def test_failed_with_block_aborts_an_upload(bucket):
    uri = f"s3://{bucket}/keep.bin"
    stor.write_bytes(uri, b"old")
    with pytest.raises(RuntimeError):
        with stor.open(uri, "wb") as f:
            f.write(b"new" * 1000)
            raise RuntimeError("writer failed")
    assert stor.read_bytes(uri) == b"old"


def test_file_objects_for_torch_numpy_pickle_pil(base_uri):
    import torch
    state = {"w": torch.arange(1000, dtype=torch.float32), "b": torch.ones(3, 3)}
    uri = stor.join(base_uri, "m.pt")
    with stor.open(uri, "wb") as f:
        torch.save(state, f)
    with stor.open(uri, "rb") as f:
        loaded = torch.load(f)
    assert torch.equal(loaded["w"], state["w"]) and torch.equal(loaded["b"], state["b"])

    arr = np.arange(5000, dtype=np.int64).reshape(50, 100)
    with stor.open(stor.join(base_uri, "a.npy"), "wb") as f:
        np.save(f, arr)
    with stor.open(stor.join(base_uri, "a.npy"), "rb") as f:
        assert np.array_equal(np.load(f), arr)

    with stor.open(stor.join(base_uri, "p.pkl"), "wb") as f:
        pickle.dump({"x": [1, 2, 3]}, f)
    with stor.open(stor.join(base_uri, "p.pkl"), "rb") as f:
        assert pickle.load(f) == {"x": [1, 2, 3]}

    with stor.open(stor.join(base_uri, "t.txt"), "w") as f:
        f.write("héllo\nworld\n")
    with stor.open(stor.join(base_uri, "t.txt"), "r") as f:
        assert f.readlines() == ["héllo\n", "world\n"]

    PIL = pytest.importorskip("PIL.Image")
    img = PIL.new("RGB", (17, 9), (10, 200, 30))
    with stor.open(stor.join(base_uri, "i.png"), "wb") as f:
        img.save(f, format="PNG")
    ref = io.BytesIO()
    img.save(ref, format="PNG")
    assert stor.read_bytes(stor.join(base_uri, "i.png")) == ref.getvalue()
    with stor.open(stor.join(base_uri, "i.png"), "rb") as f:
        back = PIL.open(f)
        back.load()
    assert back.size == (17, 9) and back.getpixel((3, 3)) == (10, 200, 30)


def test_errors_are_builtin_exception_subclasses(tmp_path, lustre_dir):
    with pytest.raises(FileNotFoundError) as e:
        stor.stat(f"nvme://{tmp_path}/none")
    assert isinstance(e.value, stor.StorError) and e.value.code == "NotFound"
    assert str(e.value).endswith("No such file or directory") and "none" in str(e.value)
    with pytest.raises(FileNotFoundError):
        stor.open(f"lustre://{lustre_dir}/none", "rb")
    with pytest.raises(IsADirectoryError):
        stor.open(f"nvme://{tmp_path}", "rb")
    stor.write_bytes(f"nvme://{tmp_path}/x", b"1")
    with pytest.raises(FileExistsError):
        stor.open(f"nvme://{tmp_path}/x", "xb")
    with pytest.raises(NotADirectoryError):
        stor.listdir(f"nvme://{tmp_path}/x")
    with pytest.raises(ValueError):
        stor.open("nope:", "rb")  # InvalidArgument: a URI without //
    with pytest.raises(ValueError):
        stor.open(f"nvme://{tmp_path}/x", "ab")
    with pytest.raises(stor.StorError):
        stor.open("nosuchscheme://x/y", "rb")
    f = stor.open(f"nvme://{tmp_path}/x", "rb", buffering=0)
    f.close()
    with pytest.raises(ValueError):
        f.read(1)
    # The whole table, code by code (the message is stor's).
    for code, builtin in [("NotFound", FileNotFoundError), ("PermissionDenied", PermissionError),
                          ("IsADirectory", IsADirectoryError), ("NotADirectory", NotADirectoryError),
                          ("AlreadyExists", FileExistsError), ("Timeout", TimeoutError),
                          ("InvalidArgument", ValueError), ("Unsupported", io.UnsupportedOperation),
                          ("Unavailable", ConnectionError), ("OutOfRange", EOFError), ("IoError", OSError),
                          ("Corruption", OSError), ("NoSpace", OSError), ("Internal", OSError)]:
        exc = _errors.from_status(code, "msg of " + code)
        assert isinstance(exc, builtin) and isinstance(exc, stor.StorError)
        assert str(exc) == "msg of " + code and exc.code == code


def test_permission_denied_is_a_permission_error():
    import subprocess
    import sys
    import tempfile
    d = tempfile.mkdtemp()
    try:
        os.chmod(d, 0o755)
        path = os.path.join(d, "private")
        with open(path, "wb") as f:
            f.write(b"x")
        os.chmod(path, 0o600 if os.geteuid() == 0 else 0)
        code = ("import stor, sys\n"
                "try:\n    stor.open(sys.argv[1], 'rb')\n"
                "except PermissionError as e:\n    print(type(e).__name__, e.code, e)\n")
        # root reads anything: check as nobody
        demote = (lambda: (os.setgid(65534), os.setuid(65534))) if os.geteuid() == 0 else None
        out = subprocess.run([sys.executable, "-c", code, "nvme://" + path], preexec_fn=demote,
                             capture_output=True, text=True, check=True).stdout
        assert out.startswith("PermissionDenied PermissionDenied") and "Permission denied" in out, out
    finally:
        import shutil
        shutil.rmtree(d)


def test_tier_reads_fetch_from_the_bucket_once(bucket, tmp_path):
    stor.write_bytes(f"s3://{bucket}/ds/a.bin", DATA)
    fast = tmp_path / "ds"
    fast.mkdir()
    assert stor.link(str(fast), f"s3://{bucket}/ds") == 1
    assert stor.listdir(f"tier://{fast}") == ["a.bin"]
    assert stor.read_bytes(f"tier://{fast}/a.bin") == DATA
    assert (fast / "a.bin").read_bytes() == DATA  # now on the fast tier
