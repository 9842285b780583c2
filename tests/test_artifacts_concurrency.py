"""Publishing is safe under concurrency on every store: processes publishing one name at the same moment get
distinct versions that all verify, and a publish killed mid-upload is invisible and does not block the next.

(Before exclusive claims, on s3:// a publisher that lost the version claim still uploaded into the winner's
folder: 3 processes x 8 publishes against moto listed 15 versions, 7 of which failed verification.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ppipe.artifacts import ArtifactStore

PROCESSES, PUBLISHES = 3, 8

# Each process publishes files whose bytes name the process and the publish, so a version holding another
# publish's file fails verification or shows the mix-up in its content.
_PUBLISHER = textwrap.dedent("""
    import os, sys, tempfile
    from ppipe.artifacts import ArtifactStore

    store, who, count, barrier = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    while not os.path.exists(barrier):  # start together
        pass
    work = tempfile.mkdtemp()
    for i in range(count):
        files = {}
        for rel, size in (("model.pdparams", 300_000), ("inference/model.json", 2000), ("config.yaml", 100)):
            path = os.path.join(work, rel.replace("/", "_"))
            tag = f"{who}-{i}-{rel}|".encode()
            with open(path, "wb") as f:
                f.write((tag * (size // len(tag) + 1))[:size])
            files[rel] = path
        m = ArtifactStore(store).publish("race", files, metrics={"who": who, "i": i})
        print(m["version"], who, i, flush=True)
""")


def _spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ))


def _race(store_url: str, tmp_path) -> None:
    barrier = tmp_path / "go"
    procs = [_spawn(_PUBLISHER, store_url, f"p{k}", str(PUBLISHES), str(barrier)) for k in range(PROCESSES)]
    time.sleep(0.5)
    barrier.touch()
    outputs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    claimed = [line.split() for out, _ in outputs for line in out.splitlines()]
    assert len(claimed) == PROCESSES * PUBLISHES
    assert len({v for v, _, _ in claimed}) == PROCESSES * PUBLISHES  # every publish got its own version

    store = ArtifactStore(store_url)
    rows = store.versions("race")
    assert len(rows) == PROCESSES * PUBLISHES
    for v, who, i in claimed:
        dest = tmp_path / "pulled" / v
        manifest = store.pull(f"race:{v}", str(dest))  # verifies every sha256
        assert manifest["metrics"] == {"who": who, "i": int(i)}
        assert (dest / "config.yaml").read_bytes().startswith(f"{who}-{i}-config.yaml|".encode())


@pytest.mark.slow
def test_concurrent_publishes_on_local_disk_get_distinct_versions_that_all_verify(tmp_path):
    _race(str(tmp_path / "store"), tmp_path)


@pytest.mark.slow
def test_concurrent_publishes_on_s3_get_distinct_versions_that_all_verify(s3_bucket, tmp_path):
    _race(f"{s3_bucket}/zoo", tmp_path)


_SLOW_PUBLISHER = textwrap.dedent("""
    import sys, time
    from ppipe import storage
    from ppipe.artifacts import ArtifactStore

    real = storage.upload_file_atomic
    def slow(local, url):
        real(local, url)
        print("uploaded", url, flush=True)
        time.sleep(60)  # killed here, between two files
    storage.upload_file_atomic = slow
    ArtifactStore(sys.argv[1]).publish("m", {"a.bin": sys.argv[2], "b.bin": sys.argv[2]})
""")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_publish_killed_mid_upload_is_invisible_and_the_next_proceeds(where, request, tmp_path):
    url = str(tmp_path / "store") if where == "local" else request.getfixturevalue("s3_bucket") + "/k"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(50_000))
    store = ArtifactStore(url)
    store.publish("m", {"a.bin": str(payload)})
    proc = _spawn(_SLOW_PUBLISHER, url, str(payload))
    line = proc.stdout.readline()
    assert line.startswith("uploaded"), proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)

    assert [r["version"] for r in store.versions("m")] == ["v1"]  # the killed publish is invisible
    assert store.resolve("m")["version"] == "v1"
    nxt = store.publish("m", {"a.bin": str(payload)})
    assert nxt["version"] == "v3"  # v2 stays the killed publish's until gc removes it
    assert [r["version"] for r in store.versions("m")] == ["v1", "v3"]
    store.pull("m", str(tmp_path / "d"))
    report = store.gc(grace_s=0.0)
    assert [u.rstrip("/").rsplit("/", 1)[-1] for u in report["incomplete"]] == ["v2"]
    assert store.version_numbers("m") == [1, 3]
