"""`ppipe data prepare` on sources built the way users build them, or broken the way disks break: symbolic links,
link loops, names that are not UTF-8, unreadable folders, OUT and SOURCE overlapping. Each ends in correct output
or in one DatasetError (one `ppipe: error:` line, exit 2, from the CLI) that names the input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ppipe.data import DatasetError, load_manifest, prepare_dataset
from tests.test_data_prepare import _noise, _save

ROOT = Path(__file__).resolve().parents[1]


def _image(path, seed: int = 0) -> None:
    _save(str(path), _noise(8, 8, seed), "JPEG")


def _prepare(src, out):
    return prepare_dataset(str(src), str(out), shard_size=4, num_workers=0, progress=False)


def _labels(out, split: str) -> dict[str, int]:
    rows = {}
    for shard in load_manifest(str(out))["splits"][split]["shards"]:
        table = pq.read_table(os.path.join(str(out), shard["path"]))
        rows.update(zip(table.column("path").to_pylist(), table.column("label").to_pylist()))
    return rows


@pytest.fixture
def src(tmp_path):
    """train/n01 with two images and val/n01 with one; `tmp_path/elsewhere` holds images outside the source."""
    root = tmp_path / "src"
    _image(root / "train" / "n01" / "a.jpg", 1)
    _image(root / "train" / "n01" / "b.jpg", 2)
    _image(root / "val" / "n01" / "v.jpg", 3)
    _image(tmp_path / "elsewhere" / "x.jpg", 4)
    _image(tmp_path / "elsewhere" / "deep" / "y.jpg", 5)
    return root


def test_symlinked_class_folders_nested_folders_and_files_are_followed(src, tmp_path):
    os.symlink(tmp_path / "elsewhere", src / "train" / "n02")
    os.symlink(tmp_path / "elsewhere" / "deep", src / "train" / "n01" / "more")
    os.symlink(tmp_path / "elsewhere" / "x.jpg", src / "val" / "n01" / "linked.jpg")
    summary = _prepare(src, tmp_path / "out")
    assert summary["num_classes"] == 2 and summary["classes"] == ["n01", "n02"]
    assert _labels(tmp_path / "out", "train") == {
        "train/n01/a.jpg": 0, "train/n01/b.jpg": 0, "train/n01/more/y.jpg": 0,
        "train/n02/x.jpg": 1, "train/n02/deep/y.jpg": 1}
    assert _labels(tmp_path / "out", "val") == {"val/n01/v.jpg": 0, "val/n01/linked.jpg": 0}
    assert summary["rejected"] == []


def test_a_changed_link_target_is_prepared_again(src, tmp_path):
    target = tmp_path / "elsewhere" / "x.jpg"
    os.symlink(target, src / "train" / "n01" / "linked.jpg")
    _prepare(src, tmp_path / "out")
    first = load_manifest(str(tmp_path / "out"))["fingerprint"]
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the target changed, not the link
    _prepare(src, tmp_path / "out")
    assert load_manifest(str(tmp_path / "out"))["fingerprint"] != first


@pytest.mark.parametrize("link, target", [("train/n01/up", ".."), ("train/n01/self", "self"),
                                          ("train/n02", "."), ("val/n01/root", "../..")])
def test_a_symlink_loop_is_refused_naming_it(src, tmp_path, link, target):
    os.symlink(target, src / link)
    with pytest.raises(DatasetError, match="symbolic link loop") as e:
        _prepare(src, tmp_path / "out")
    assert str(src / link) in str(e.value)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_symlink_into_out_is_refused_naming_it(src, tmp_path):
    out = tmp_path / "out"
    _image(out / "stray" / "z.jpg")
    os.symlink(out / "stray", src / "train" / "n02")
    with pytest.raises(DatasetError, match="symbolic link into OUT") as e:
        _prepare(src, out)
    assert str(src / "train" / "n02") in str(e.value)
    assert not (out / "manifest.json").exists()


def test_a_broken_symlink_is_rejected_with_its_path(src, tmp_path):
    os.symlink(tmp_path / "gone", src / "train" / "n02")
    os.symlink(tmp_path / "gone.jpg", src / "train" / "n01" / "c.jpg")
    summary = _prepare(src, tmp_path / "out")
    assert summary["classes"] == ["n01"] and summary["splits"]["train"] == {"num_images": 2}
    assert [r["path"] for r in summary["rejected"]] == ["train/n01/c.jpg", "train/n02"]
    assert all(r["reason"].startswith("broken symbolic link") for r in summary["rejected"])


def test_names_that_are_not_utf8_are_rejected_with_escaped_paths(src, tmp_path):
    root = os.fsencode(src)
    os.mkdir(root + b"/train/\xff")
    _image(os.fsdecode(root + b"/train/\xff/a.jpg"))
    _image(os.fsdecode(root + b"/train/n01/\xfe.jpg"))
    (src / "train" / "n01" / "notes.txt").write_text("x")
    os.rename(src / "train" / "n01" / "notes.txt", os.fsdecode(root + b"/train/n01/\xfd.txt"))  # not an image
    summary = _prepare(src, tmp_path / "out")
    assert summary["classes"] == ["n01"] and summary["splits"]["train"] == {"num_images": 2}
    assert summary["rejected"] == [  # sorted by path: "\\" comes before "n"
        {"path": "train/\\xff", "reason": "folder name is not valid UTF-8 (rename it to include it)"},
        {"path": "train/n01/\\xfe.jpg", "reason": "file name is not valid UTF-8 (rename it to include it)"}]
    with open(tmp_path / "out" / "manifest.json", encoding="utf-8") as f:
        assert json.load(f)["rejected"] == summary["rejected"]


def test_a_source_path_that_is_not_utf8_is_recorded_escaped(src, tmp_path):
    odd = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9")
    os.rename(src, odd)
    summary = prepare_dataset(odd, str(tmp_path / "out"), num_workers=0, progress=False)
    assert summary["splits"]["train"] == {"num_images": 2}
    assert load_manifest(str(tmp_path / "out"))["source"] == f"{tmp_path}/caf\\xe9"


def test_a_list_file_that_is_not_utf8_is_an_error_naming_it(tmp_path):
    root = tmp_path / "src"
    _image(root / "images" / "a.jpg")
    (root / "train_list.txt").write_bytes(b"images/a.jpg 0\nimages/\xff.jpg 1\n")
    with pytest.raises(DatasetError, match="is not UTF-8 text") as e:
        _prepare(root, tmp_path / "out")
    assert str(root / "train_list.txt") in str(e.value)


def test_an_unreadable_folder_is_an_error_naming_it(src, tmp_path, monkeypatch):
    """Simulated with a patched os.scandir: tests run as root, for whom chmod 000 does not stop reads (the CLI
    test below makes a folder really unreadable, as user nobody)."""
    real = os.scandir
    refused = str(src / "train" / "n01")

    def scandir(path="."):
        if os.fspath(path) == refused:
            raise PermissionError(13, "Permission denied", refused)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DatasetError) as e:
        _prepare(src, tmp_path / "out")
    assert str(e.value) == f"cannot read dataset source folder {refused!r}: permission denied"
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize("out_of", [lambda src: src / "train" / "prepared", lambda src: src,
                                    lambda src: src.parent, lambda src: src / "out-link"],
                         ids=["out-inside-source", "out-is-source", "source-inside-out", "out-links-into-source"])
def test_out_and_source_must_not_overlap(src, out_of):
    os.symlink(src / "val", src / "out-link")  # OUT given through a link into the source
    out = out_of(src)
    with pytest.raises(DatasetError, match="OUT") as e:
        _prepare(src, out)
    assert str(out) in str(e.value) and str(src) in str(e.value)
    assert not (Path(out) / "manifest.json").exists()


def test_out_next_to_a_source_with_a_similar_name_is_accepted(src, tmp_path):
    summary = _prepare(src, tmp_path / "src-prepared")  # "src-prepared" starts with "src" but is not inside it
    assert summary["splits"]["train"] == {"num_images": 2}


# Root reads folders whatever their mode, and user nobody cannot run this interpreter (it lives under /root, 0700):
# as root, the CLI runs with os.scandir refusing folders that have no read bit, as the kernel does for others.
_AS_OTHERS_SEE_IT = """
import os, runpy, stat
real = os.scandir
def scandir(path="."):
    if not os.stat(path).st_mode & stat.S_IRUSR:
        raise PermissionError(13, "Permission denied", os.fspath(path))
    return real(path)
os.scandir = scandir
runpy.run_module("ppipe", run_name="__main__", alter_sys=True)
"""


def _cli(*args, honour_modes=False):
    launch = ["-c", _AS_OTHERS_SEE_IT] if honour_modes and os.geteuid() == 0 else ["-m", "ppipe"]
    return subprocess.run([sys.executable, *launch, "data", "prepare", *args, "--workers", "0"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _assert_one_line_error(run, *names):
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("ppipe: error: "), run.stderr
    for name in names:
        assert name in errors[0]


@pytest.mark.parametrize("case", ["loop", "out-inside-source", "link-into-out"])
def test_cli_reports_hostile_sources_in_one_line(src, tmp_path, case):
    out = tmp_path / "out"
    if case == "loop":
        os.symlink("..", src / "train" / "n01" / "up")
        named = str(src / "train" / "n01" / "up")
    elif case == "out-inside-source":
        out = src / "train" / "prepared"
        named = str(out)
    else:
        out.mkdir()
        os.symlink(out, src / "train" / "n02")
        named = str(src / "train" / "n02")
    _assert_one_line_error(_cli(str(src), str(out)), named)


def test_cli_reports_an_unreadable_folder_in_one_line(src, tmp_path):
    """chmod 000 on a class folder; as root, the child's os.scandir honours the mode (see `_AS_OTHERS_SEE_IT`)."""
    _image(src / "train" / "n02" / "b.jpg")
    os.chmod(src / "train" / "n02", 0o000)
    try:
        run = _cli(str(src), str(tmp_path / "out"), honour_modes=True)
    finally:
        os.chmod(src / "train" / "n02", 0o755)
    _assert_one_line_error(run, f"cannot read dataset source folder '{src / 'train' / 'n02'}': permission denied")
    assert not (tmp_path / "out" / "manifest.json").exists()
