"""A report on disk: the HTML page with the PNG of every plot beside it."""

from __future__ import annotations

from pathlib import Path

from .html import render_html
from .plots import render_plots
from .snapshot import RunSnapshot, read_run

REPORT_DIR = "report"
REPORT_FILE = "report.html"


def render(snap: RunSnapshot, refresh_seconds: float | None = None) -> tuple[str, dict[str, bytes]]:
    """The page and the PNGs it embeds."""
    pngs = render_plots(snap)
    return render_html(snap, pngs, refresh_seconds), pngs


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write `report.html` and one PNG per plot into `out` (default RUN/report/); returns the HTML path.

    `out` may also name the HTML file itself (anything ending in .html); the PNGs go beside it.
    """
    from ..rundir import make_folder

    snap = read_run(run_dir)
    target = Path(out) if out is not None else Path(run_dir) / REPORT_DIR
    page_path = target if target.suffix.lower() in (".html", ".htm") else target / REPORT_FILE
    make_folder(page_path.parent, "out")
    page, pngs = render(snap)
    for name, data in pngs.items():
        (page_path.parent / f"{name}.png").write_bytes(data)
    tmp = page_path.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(page_path)  # a browser reloading the file never sees half a page
    return page_path
