"""The report: HTML page in a real (headless) browser, its pieces, the live view, and the notebook.

One small real search is shared by the module; the live-view test runs its own search in a
subprocess, since it must watch one in progress.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import nasforge
from nasforge.cli import main
from nasforge.errors import NasforgeError
from nasforge.objectives import Objective, pareto_front, study_objectives
from nasforge.report.architecture import plan_nodes
from nasforge.report.html import render_html
from nasforge.report.lineage import lineage
from nasforge.report.plots import PLOTS, render_plots
from nasforge.report.snapshot import read_run
from nasforge.space import LayerGraphSpace
from nasforge.store import STORE_FILE, Store, TrialRecord

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SMALL_SPACE = {"space": {"channels": [8, 16], "max_blocks": 3}}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real evolution search small enough for seconds: population 3, so trials 4.. are mutants."""
    out = tmp_path_factory.mktemp("report") / "run"
    nasforge.search(SMALL_SPACE, dataset="digits", strategy="evolution", population=3, trials=7, epochs=2, seed=1,
                    out=str(out), progress=False)
    return out


def _trial(id_: int, parents: list[int] = (), operator: str = "random", **metrics: float) -> TrialRecord:
    params = int(metrics.pop("params", 1000))
    return TrialRecord(id=id_, genome=[], genome_key=str(id_), parents=list(parents), operator=operator, status="complete",
                       seed=0, reward=metrics.get("accuracy"), metrics=dict(metrics), params=params)


# -- the page in a browser ------------------------------------------------------------------------
@pytest.mark.slow
def test_report_renders_in_headless_chromium(run: Path, tmp_path: Path) -> None:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    page = tmp_path / "rep" / "report.html"
    text = page.read_text()
    # Self-contained: every image inline, nothing fetched from anywhere.
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", text)
    for spec in PLOTS:  # a PNG beside the page for every plot, and the same image inside it
        png = (tmp_path / "rep" / f"{spec.name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert base64.b64encode(png).decode() in text

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        driver.get(page.as_uri())
        trials = read_run(run).trials
        rows = driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")
        assert sorted(int(r.get_attribute("data-trial")) for r in rows) == [t.id for t in trials]
        images = driver.find_elements(By.CSS_SELECTOR, "img.plot")
        assert {i.get_attribute("id") for i in images} == {f"plot-{spec.name}" for spec in PLOTS}
        for img in images:
            assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 100, img.get_attribute("id")

        # The sorting script works: params ascending, then descending on a second click.
        header = next(h for h in driver.find_elements(By.CSS_SELECTOR, "#leaderboard th") if h.text.strip() == "params")
        column = [h.text.strip() for h in driver.find_elements(By.CSS_SELECTOR, "#leaderboard th")].index("params")

        def params_column() -> list[int]:
            return [int(r.find_elements(By.TAG_NAME, "td")[column].get_attribute("data-v"))
                    for r in driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")]

        header.click()
        assert params_column() == sorted(t.params for t in trials)
        header.click()
        assert params_column() == sorted((t.params for t in trials), reverse=True)

        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        driver.execute_script("window.scrollTo(0, 0)")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(int(height) + 40, 16000))
        ARTIFACTS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "report.png"))
    finally:
        driver.quit()


# -- pieces ---------------------------------------------------------------------------------------
def test_snapshot_is_read_only_and_sees_commits_while_a_writer_holds_the_store(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = (copy / STORE_FILE).read_bytes()
    n = len(read_run(copy).trials)
    assert (copy / STORE_FILE).read_bytes() == before  # reading wrote nothing into the database

    store = Store.in_dir(copy, readonly=False)
    store.db.execute("BEGIN IMMEDIATE")  # the writer is mid-transaction...
    store.db.execute("INSERT INTO trials (genome, genome_key, parents, operator, status, seed, started_at) "
                     "VALUES ('[]', 'k', '[]', 'random', 'running', 0, 0)")
    assert len(read_run(copy).trials) == n  # ...the reader neither blocks nor sees uncommitted rows
    store.db.execute("COMMIT")
    assert len(read_run(copy).trials) == n + 1
    store.close()

    with pytest.raises(NasforgeError, match="holds no study"):
        read_run(tmp_path / "nowhere")


def test_lineage_follows_every_parent_with_its_operator() -> None:
    trials = [_trial(1), _trial(2), _trial(3, [1], "insert:conv"), _trial(4, [3, 2], "crossover"),
              _trial(5, [4], "change:conv.kernel"), _trial(6, [1], "delete:pool"), _trial(7, [99], "x")]
    lin = lineage(trials, 5)
    assert sorted(lin.nodes) == [1, 2, 3, 4, 5]
    assert {(e.parent, e.child, e.operator) for e in lin.edges} == {
        (1, 3, "insert:conv"), (3, 4, "crossover"), (2, 4, "crossover"), (4, 5, "change:conv.kernel")}
    assert lin.depth == {5: 0, 4: 1, 3: 2, 2: 2, 1: 3}
    assert [t.id for t in lin.chain()] == [1, 2, 3, 4, 5]
    assert lineage(trials, 7).missing == [99]


def test_lineage_of_the_real_search_matches_the_store(run: Path) -> None:
    snap = read_run(run)
    lin = lineage(snap.trials, snap.best.id)
    for edge in lin.edges:
        assert edge.parent in snap.trial(edge.child).parents
        assert edge.operator == snap.trial(edge.child).operator
    # Evolution with population 3: every trial after the third is a mutant of an earlier one.
    assert all(t.parents and t.operator != "random" for t in snap.trials[3:])


def test_pareto_front_mixed_directions_ties_and_missing_values() -> None:
    trials = [_trial(1, accuracy=0.90, params=5000), _trial(2, accuracy=0.80, params=1000), _trial(3, accuracy=0.85, params=6000),
              _trial(4, accuracy=0.90, params=5000), _trial(5, accuracy=0.95, params=9000), _trial(6, accuracy=0.70, params=1000)]
    trials.append(TrialRecord(id=7, genome=[], genome_key="7", parents=[], operator="random", status="complete", seed=0,
                              reward=0.99, metrics={"accuracy": 0.99}, params=None))  # no params: takes no part
    assert [t.id for t in pareto_front(trials, ["accuracy", "params"])] == [1, 2, 4, 5]
    assert [t.id for t in pareto_front(trials, ["accuracy:min", "params:max"])] == [3, 5, 6]
    assert [t.id for t in pareto_front(trials, ["accuracy"])] == [7]
    assert Objective.parse("latency_ms") == Objective("latency_ms", False)
    assert Objective.parse("f1") == Objective("f1", True)
    assert study_objectives({"objectives": "accuracy,flops"}) == [Objective("accuracy", True), Objective("flops", False)]
    assert study_objectives({"reward": "accuracy"}) == []
    with pytest.raises(NasforgeError):
        Objective.parse("accuracy:up")


def test_report_shows_the_front_when_the_study_declares_objectives(run: Path) -> None:
    snap = read_run(run)
    single = render_html(snap, {})
    assert 'id="pareto"' not in single and "single objective" in single
    snap.config["objectives"] = ["accuracy", "params"]  # as a multi-objective study records them
    page = render_html(snap, render_plots(snap))
    front = pareto_front(snap.trials, ["accuracy", "params"])
    table = page[page.index('id="pareto"'):]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == len(front) + 1 and len(front) >= 1
    assert 'id="plot-pareto"' in page


def test_architecture_nodes_put_skip_branches_beside_the_main_path() -> None:
    space = LayerGraphSpace((1, 8, 8), 10)
    genome = space.from_json([{"kind": "conv", "kernel": 3, "channels": 8, "stride": 1}, {"kind": "act", "fn": "relu"},
                              {"kind": "conv", "kernel": 3, "channels": 16, "stride": 2}, {"kind": "skip", "span": 2}])
    plan = space.plan(genome)
    nodes = plan_nodes(plan)
    assert len(nodes) == len(plan.steps) + 1
    add = next(n for n in nodes if n.kind == "add")
    assert len(add.inputs) == 2
    side = [n for n in nodes if n.column == 1]
    # The skip from 8 channels at 8x8 into 16 at 4x4 needs a pooling and a 1x1 projection, off the main path.
    assert [n.label.split()[0] for n in side] == ["AdaptiveAvgPool2d", "Conv2d"]
    assert all(n.column == 0 for n in nodes if n not in side)


def test_report_of_failed_running_and_no_trials(run: Path) -> None:
    snap = read_run(run)
    snap.final = None  # as while the search is still going
    snap.trials.append(TrialRecord(id=98, genome=snap.trials[0].genome, genome_key="f", parents=[1], operator="insert:conv",
                                   status="failed", seed=0, error="NaN loss in epoch 1", started_at=snap.trials[-1].finished_at,
                                   finished_at=snap.trials[-1].finished_at + 1))
    snap.trials.append(TrialRecord(id=99, genome=snap.trials[0].genome, genome_key="r", parents=[], operator="random",
                                   status="running", seed=0, started_at=snap.trials[-1].finished_at))
    pngs = render_plots(snap)
    assert set(pngs) == {spec.name for spec in PLOTS}
    page = render_html(snap, pngs)
    assert page.count('data-trial="') == len(snap.trials)
    assert '<tr class="failed" data-trial="98">' in page and "NaN loss in epoch 1" in page
    assert "not yet scored on the test split" in page  # the best so far, before the search has scored it on test
    snap.trials = []
    empty = render_html(snap, render_plots(snap))
    assert empty.count('data-trial="') == 0 and "No trial has completed yet" in empty and "<img" not in empty


# -- the live view --------------------------------------------------------------------------------
def _listening_addresses(port: int) -> list[str]:
    """Local addresses of IPv4 sockets listening on `port`, from the kernel's own table."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        host, hexport = local.split(":")
        if state == "0A" and int(hexport, 16) == port:
            found.append(".".join(str(int(host[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return response.read().decode()


@pytest.mark.slow
def test_live_view_serves_on_loopback_and_follows_a_running_search(tmp_path: Path) -> None:
    out = tmp_path / "live"
    config = tmp_path / "small.yaml"
    config.write_text(json.dumps(SMALL_SPACE))  # JSON is YAML: a small space makes trials take well under a second
    log = (tmp_path / "search.log").open("w")
    # Far more trials than the test waits for: it interrupts the search (Ctrl-C, resumable) once it
    # has seen the page change, so both looks happen mid-search however loaded the machine is.
    search = subprocess.Popen(
        [sys.executable, "-m", "nasforge.cli", "search", str(config), "--dataset", "digits", "--strategy", "random", "--trials", "500",
         "--seconds", "300", "--epochs", "1", "--progress", "false", "--out", str(out)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    server = None
    try:
        deadline = time.monotonic() + 90
        while not (out / STORE_FILE).exists():
            assert time.monotonic() < deadline and search.poll() is None, (tmp_path / "search.log").read_text()
            time.sleep(0.2)
        server = subprocess.Popen([sys.executable, "-m", "nasforge.cli", "report", str(out), "--serve", "--port", "0", "--refresh", "1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = server.stderr.readline()
        match = re.search(r"http://([\d.]+):(\d+)/", line)
        assert match, line
        host, port = match.group(1), int(match.group(2))
        assert host == "127.0.0.1"
        if Path("/proc/net/tcp").exists():
            assert _listening_addresses(port) == ["127.0.0.1"]
        url = f"http://127.0.0.1:{port}/"

        def poll() -> tuple[str, int]:
            page = _get(url)
            return page, page.count('data-trial="')

        first, n_first = poll()
        while n_first == 0 or "running or interrupted" not in first:
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.5)
            first, n_first = poll()
        assert '<meta http-equiv="refresh" content="1">' in first
        second, n_second = poll()
        while n_second <= n_first:
            assert time.monotonic() < deadline, "the live page did not change while the search ran"
            time.sleep(0.5)
            second, n_second = poll()
        assert n_second > n_first and "running or interrupted" in second
        assert search.poll() is None  # both looks were taken while the search was running
        with urllib.request.urlopen(url + "plots/reward_by_trial.png", timeout=30) as response:
            assert response.read()[:4] == b"\x89PNG"
        search.send_signal(signal.SIGINT)
        assert search.wait(timeout=90) == 130, (tmp_path / "search.log").read_text()
        last, n_last = poll()
        assert n_last == len(read_run(out).trials) >= n_second
    finally:
        for proc in (server, search):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=20)
        log.close()


# -- the notebook ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_quickstart_notebook_runs_headless(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == len(PLOTS)  # every plot shown inline
    text = "".join(o.get("text", "") for o in outputs)
    assert "model.torchscript.pt" in text and "predictions:" in text
    assert (tmp_path / "quickstart_run" / "report" / "report.html").exists()
    report = json.dumps(notebook)  # outputs are real PNG data, not placeholders
    assert report.count("iVBORw0KGgo") == len(PLOTS)


def test_report_command_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / STORE_FILE).write_bytes(b"not a database at all" * 100)
    assert main(["report", str(tmp_path / "bad")]) == 2
    assert "not a readable nasforge study store" in capsys.readouterr().err
    assert (tmp_path / "bad" / STORE_FILE).read_bytes() == b"not a database at all" * 100  # read-only: left as it was
