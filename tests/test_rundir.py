"""The run directory: checked before any data is loaded, one writer at a time, readers that never write,
stores that are whole or refused, exports that are whole or absent, runs that can be repaired."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import nasforge
from nasforge.cli import main
from nasforge.errors import RunDirError, RunLocked, StoreDamaged
from nasforge.export import DamagedExport, export_trial, load
from nasforge.rundir import LOCK_FILE, RunDir
from nasforge.store import STORE_FILE, Store

TINY = ["--dataset", "digits", "--trials", "2", "--epochs", "1", "--max-blocks", "2", "--progress", "false"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rundir") / "run"
    nasforge.search(dataset="digits", strategy="random", trials=3, epochs=1, max_blocks=2, seed=0, out=str(out), progress=False)
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


# -- --out is checked before any data is loaded ---------------------------------------------------
@pytest.mark.parametrize("out, message", [
    ("sqlite:///x.db", "looks like a URL"),
    ("FILE", "is a file, not a folder"),
    ("FILE/run", "which is a file, not a folder"),
])
def test_an_unusable_out_is_one_line_before_the_data_is_loaded(out, message, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("not a folder")
    import nasforge.api

    monkeypatch.setattr(nasforge.api, "load_data_for", lambda config: pytest.fail("data loaded before --out was checked"))
    code, err = _cli(capsys, "search", *TINY, "--out", out)
    assert code == 2 and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]  # nothing made, not even 'sqlite:'


def test_an_unwritable_out_is_one_line(tmp_path, capsys) -> None:
    if os.geteuid() == 0:  # root writes anywhere a mode allows; /sys refuses new entries even to root
        out = Path("/sys/nasforge-test-run")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        out = locked / "run"
    code, err = _cli(capsys, "search", *TINY, "--out", str(out))
    assert code == 2 and ("permission" in err or "not allowed" in err) and not out.exists()


def test_a_csv_not_in_utf8_is_a_data_error(tmp_path, capsys) -> None:
    (tmp_path / "latin1.csv").write_bytes("a,b,label\n1,2,caf\xe9\n".encode("latin-1") * 20)
    code, err = _cli(capsys, "search", "--dataset", str(tmp_path / "latin1.csv"), "--trials", "1", "--out", str(tmp_path / "r"))
    assert code == 2 and "not UTF-8" in err and not (tmp_path / "r").exists()


# -- one writer per run -----------------------------------------------------------------------------
def test_a_second_writer_exits_2_naming_the_holder(tmp_path, capsys) -> None:
    holder = RunDir(tmp_path / "r").acquire()
    try:
        code, err = _cli(capsys, "search", *TINY, "--out", str(tmp_path / "r"))
        assert code == 2 and f"pid {os.getpid()} on {socket.gethostname()} since " in err and "--resume" in err
        with pytest.raises(RunLocked):
            RunDir(tmp_path / "r").acquire()
    finally:
        holder.release()
    assert not (tmp_path / "r" / STORE_FILE).exists()
    RunDir(tmp_path / "r").acquire().release()  # free again once released


def test_a_writer_caught_between_locking_and_writing_its_record_is_still_named(tmp_path) -> None:
    # The holder takes the flock, then writes who it is: a newcomer arriving in between waits for the record.
    fcntl = pytest.importorskip("fcntl")
    (tmp_path / "r").mkdir()
    fd = os.open(tmp_path / "r" / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    record = {"pid": 4242, "host": "elsewhere", "since": 1.0e9, "command": "nasforge search"}
    writer = threading.Timer(0.3, lambda: os.pwrite(fd, json.dumps(record).encode(), 0))
    writer.start()
    try:
        with pytest.raises(RunLocked, match="pid 4242 on elsewhere"):
            RunDir(tmp_path / "r").acquire()
    finally:
        writer.join()
        os.close(fd)


def test_resume_waits_for_no_one_but_refuses_a_held_run(run, tmp_path, capsys) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    before = _digest(copy / STORE_FILE)
    holder = RunDir(copy).acquire()
    try:
        code, err = _cli(capsys, "search", "--resume", "--out", str(copy), "--trials", "4")
        assert code == 2 and "being written by another search" in err
        assert _cli(capsys, "show", str(copy))[0] == 0  # readers never wait for the writer
    finally:
        holder.release()
    assert _digest(copy / STORE_FILE) == before


def test_the_lock_of_a_dead_writer_is_taken_over_and_said(run, tmp_path, capsys) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    record = {"pid": dead.pid, "host": socket.gethostname(), "since": 1.0e9, "command": "nasforge search"}
    (copy / LOCK_FILE).write_text(json.dumps(record))
    code, err = _cli(capsys, "search", "--resume", "--out", str(copy), "--trials", "3")
    assert code == 0 and f"pid {dead.pid}" in err and "taken over" in err
    assert (copy / LOCK_FILE).read_text() == ""  # released cleanly: nothing left to take over


# -- readers never write, and every command refuses a store that is not whole ------------------------
def test_readers_leave_the_store_as_it_was(run, tmp_path, capsys) -> None:
    before = _digest(run / STORE_FILE)
    assert _cli(capsys, "show", str(run))[0] == 0
    assert _cli(capsys, "show", str(run), "--json")[0] == 0
    assert _cli(capsys, "report", str(run), "--out", str(tmp_path / "report"))[0] == 0
    assert _cli(capsys, "export", str(run), "--out", str(tmp_path / "model"))[0] == 0
    assert _digest(run / STORE_FILE) == before


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _empty_database(path: Path) -> None:
    path.unlink()
    sqlite3.connect(path).execute("PRAGMA user_version = 1").connection.close()


def _without(key: str):
    def damage(path: Path) -> None:
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))
        db.close()
    return damage


def _garbage_in_the_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) >= 4 * page
    data[2 * page : 3 * page] = os.urandom(page)  # one whole page of the b-tree: SQLite's check finds it
    path.write_bytes(bytes(data))


def _not_a_database(path: Path) -> None:
    path.write_bytes(b"this is not a database " * 500)


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


DAMAGE = {
    "empty": (_empty, "is empty (0 bytes)"),
    "empty database": (_empty_database, "empty SQLite database"),
    "no config": (_without("config"), "has no config record"),
    "no space": (_without("space"), "has no space record"),
    "garbage in the middle": (_garbage_in_the_middle, "Still readable"),
    "not a database": (_not_a_database, "not a readable nasforge study store"),
    "truncated": (_truncated, "sqlite3"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_every_command_refuses_a_store_that_is_not_whole(kind, run, tmp_path, capsys) -> None:
    damage, message = DAMAGE[kind]
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    for extra in ("-wal", "-shm"):
        (copy / (STORE_FILE + extra)).unlink(missing_ok=True)
    damage(copy / STORE_FILE)
    before = _digest(copy / STORE_FILE)
    commands = [["show", str(copy)], ["show", str(copy), "--json"], ["report", str(copy), "--out", str(tmp_path / "rep")],
                ["export", str(copy), "--out", str(tmp_path / "model")], ["search", "--resume", "--out", str(copy), "--trials", "5"]]
    for argv in commands:
        code, err = _cli(capsys, *argv)
        assert code == 2 and message in err, (argv, err)
        assert "start a new search" in err.lower() or "recover" in err, err  # and what to do about it
    assert _digest(copy / STORE_FILE) == before  # nothing written, no schema made up, no config invented
    assert not (tmp_path / "model").exists()
    with pytest.raises(StoreDamaged):
        nasforge.search(resume=True, out=str(copy), progress=False)


def test_a_store_is_created_whole_or_not_at_all(tmp_path, monkeypatch) -> None:
    from nasforge import store as store_module

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module.os, "replace", fail)
    with pytest.raises(RunDirError, match="disk is full"):
        Store.create(tmp_path / STORE_FILE, {"config": {}, "dataset": {}, "space": {}})
    assert list(tmp_path.iterdir()) == []  # neither a store nor its temporary file


# -- exports ----------------------------------------------------------------------------------------
def test_export_out_problems_are_one_line(run, tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    for out, message in (("file", "is a file"), ("file/m", "which is a file"), ("notes", "not a nasforge export")):
        code, err = _cli(capsys, "export", str(run), "--out", str(tmp_path / out))
        assert code == 2 and message in err
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"
    # An earlier export is replaced whole; nothing temporary is left beside it.
    assert _cli(capsys, "export", str(run), "--out", str(tmp_path / "m"))[0] == 0
    (tmp_path / "m" / "stale.txt").write_text("from before")
    assert _cli(capsys, "export", str(run), "--out", str(tmp_path / "m"))[0] == 0
    assert not (tmp_path / "m" / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "m", "notes"]


def test_load_names_a_damaged_export(run, tmp_path) -> None:
    folder = export_trial(run, tmp_path / "m")
    model = load(folder)
    genome = (folder / "genome.json").read_text()
    (folder / "genome.json").write_text(genome[: len(genome) // 2])
    with pytest.raises(DamagedExport, match="genome.json cannot be read"):
        load(folder)
    (folder / "genome.json").write_text(genome)
    weights = (folder / "weights.pt").read_bytes()
    (folder / "weights.pt").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(DamagedExport, match="weights.pt cannot be read"):
        load(folder)
    (folder / "weights.pt").write_bytes(weights)
    assert all(torch.equal(a, b) for a, b in zip(load(folder).state_dict().values(), model.state_dict().values()))


def test_load_checks_shapes_before_allocating(run, tmp_path) -> None:
    folder = export_trial(run, tmp_path / "m")
    meta = json.loads((folder / "genome.json").read_text())
    # A crafted genome asking for ~400 GB of weights next to the real (small) weight file.
    meta["genome"] = [{"kind": "conv", "kernel": 3, "channels": 100_000, "stride": 1}] * 2
    meta["space_config"]["options"]["channels"] = [100_000]
    (folder / "genome.json").write_text(json.dumps(meta))
    with pytest.raises(DamagedExport, match="does not match genome.json"):
        load(folder)


# -- repairable runs --------------------------------------------------------------------------------
def test_a_lost_final_model_is_exported_from_the_trial_and_rebuilt_by_resume(run, tmp_path, capsys) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    final = torch.load(copy / "final.pt", weights_only=True)
    (copy / "final.pt").unlink()
    code, err = _cli(capsys, "export", str(copy), "--best", "--out", str(tmp_path / "m"))
    assert code == 0 and "warning:" in err and "final.pt is missing" in err
    meta = json.loads((tmp_path / "m" / "genome.json").read_text())
    assert "final.pt is missing" in meta["note"] and meta["test"] is not None  # the trial's weights are the final model
    assert all(torch.equal(final[k], v) for k, v in load(tmp_path / "m").state_dict().items())
    code, err = _cli(capsys, "search", "--resume", "--out", str(copy))
    assert code == 0
    rebuilt = torch.load(copy / "final.pt", weights_only=True)
    assert rebuilt.keys() == final.keys() and all(torch.equal(rebuilt[k], final[k]) for k in final)
