"""catdb report on the real Lowell night: every section present, and it renders in headless Chromium."""
from __future__ import annotations

import shutil
import subprocess
import warnings

import numpy as np
import pytest

from catdb.export.report import write_report
from catdb.stages import run_stage
from tests.lowell_night import night_db_url

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def night_report(pg_server, template_db, tmp_path_factory):
    from catdb.db.engine import connect

    url, info = night_db_url(pg_server, template_db)
    out = tmp_path_factory.mktemp("report")
    with connect(url) as c:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_stage("exposure-summary", conn=c)
            run_stage("calibrate", conn=c, params={"method": "relative"})
            run_stage("associate", conn=c)
            run_stage("movers", conn=c, params={"max_rate": "100", "min_detections": "8"})
            # the night helper ingests the reduced frames themselves as the exposures' images
            run_stage("forced", conn=c, params={"tracks": "status = 'candidate'", "use_raw": "true"})
            run_stage("lightcurve", conn=c, params={"outdir": str(out / "lc")})
            c.commit()
            path = write_report(c, out / "report.html", title="Lowell 42-inch, 2019-03-26")
    return path


def test_report_sections(night_report):
    html = night_report.read_text()
    for head in ("Exposures", "Zeropoint, seeing and background", "Sky: objects and candidate tracks",
                 "Moving-object candidates", "Target light curve", "Filter-chain ledger", "Stage runs"):
        assert f"<h2>{head}" in html, head
    assert "section failed" not in html
    # figures: time series, sky plot, a cutout strip per candidate (>= 2 asteroids), light curve
    assert html.count("data:image/png;base64,") >= 5
    assert html.count("<h3>Track ") >= 2
    assert html.count(".fits.fz</td>") == 23  # one exposure row per science frame of the night


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
def test_report_renders_in_chromium(night_report, tmp_path):
    from matplotlib.image import imread

    png = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1300,2400",
                    f"--screenshot={png}", night_report.as_uri()], capture_output=True, timeout=120, check=True)
    img = imread(png)
    assert img.shape[0] == 2400 and img.shape[1] == 1300
    # a rendered page, not a blank or error page: many distinct grey levels (plots, cutouts, tables)
    grey = (img[..., :3].mean(axis=2) * 255).astype(int)
    assert len(np.unique(grey)) > 100
    assert grey.std() > 20
