"""catdb report: on the real Lowell night every section is present and it renders in headless Chromium;
on the real LCO catalogue calibrated against Gaia DR2 (with QA runs) the diagnostics figures are drawn."""
from __future__ import annotations

import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest

from catdb.export.report import qa_boxplot_figure, residuals_figure, write_report
from catdb.stages import run_stage
from tests.helpers import TEST_DATA
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
    # relative calibration ran: zeropoints and residual panels; the QA stages did not: one line each
    assert "Photometric zeropoints against time" in html and 'data-panels="' in html
    assert "Stage qa-astrometry has not run" in html and "Stage qa-background has not run" in html


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
def test_report_renders_in_chromium(night_report, tmp_path):
    img = screenshot(night_report, tmp_path)
    assert img.shape[0] == 2400 and img.shape[1] == 1300
    # a rendered page, not a blank or error page: many distinct grey levels (plots, cutouts, tables)
    grey = (img[..., :3].mean(axis=2) * 255).astype(int)
    assert len(np.unique(grey)) > 100
    assert grey.std() > 20


def screenshot(page, tmp_path, height=2400):
    from matplotlib.image import imread

    png = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--window-size=1300,{height}",
                    f"--screenshot={png}", page.as_uri()], capture_output=True, timeout=120, check=True)
    return imread(png)


# ------------------------------------------------------------------ calibration and QA diagnostics
LCO = TEST_DATA / "lco"
# copies of the real LCO frame through one night: (zeropoint shift [mag], astrometric noise ["], background x)
COPIES = [(0.00, 0.0, 1.00), (0.02, 0.0, 1.01), (0.05, 0.0, 0.99), (0.08, 0.0, 1.02), (0.10, 1.6, 1.00),
          (0.12, 0.0, 1.60), (0.15, 0.0, 1.00)]


@pytest.fixture(scope="module")
def calib_report(db_url, tmp_path_factory):
    """The real LCO LDAC frame and 7 copies through the night (zeropoint drifting by 0.15 mag, one copy
    with 1.6" astrometric noise, one with a 60 % brighter sky, one with 4 detections), calibrated with
    pp against the real Gaia DR2 catalogue, qa-astrometry and qa-background run; the report written
    with --png-dir."""
    from catdb.db.engine import connect
    from catdb.ingest.load import ingest_catalogs, ingest_refcat

    out = tmp_path_factory.mktemp("calib-report")
    with connect(db_url) as c:
        eid = ingest_catalogs(c, [LCO / "ldac_test_catalog.fits"])[0].exposure_ids[0]
        ingest_refcat(c, LCO / "GAIA-DR2.cat", catalog="gaia-dr2", band="G")
        c.execute("SELECT setseed(0.3)")
        ids = [eid]
        for k, (dzp, noise, bkg) in enumerate(COPIES + [(0.0, 0.0, 1.0)]):
            new = c.execute(
                "INSERT INTO exposure (path, hdu, image_type, band, filter, mjd_mid, night, site_lon, ra_center, "
                "dec_center, radius, fwhm, exptime) SELECT %s, 0, image_type, band, filter, mjd_mid + %s, night, "
                "site_lon, ra_center, dec_center, radius, fwhm, exptime FROM exposure WHERE id = %s RETURNING id",
                (f"lco-copy-{k}", 0.012 * (k + 1), eid)).fetchone()[0]
            few = k == len(COPIES)  # the last copy: 4 detections, too few stars for a zeropoint
            c.execute(
                "INSERT INTO detection (exposure_id, number, ra, dec, flags, snr, flux_auto, fluxerr_auto, "
                "background, fwhm) SELECT %s, number, ra + (random() - 0.5) * %s / 3600 / cos(radians(dec)), "
                "dec + (random() - 0.5) * %s / 3600, flags, snr, flux_auto * power(10, -0.4 * %s), "
                "fluxerr_auto * power(10, -0.4 * %s), background * %s, fwhm FROM detection "
                "WHERE exposure_id = %s" + (" AND number <= 4" if few else ""),
                (new, noise, noise, dzp, dzp, bkg, eid))
            ids.append(new)
        c.commit()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_stage("calibrate", conn=c, params={"refcat": "gaia-dr2", "band": "G"})
            run_stage("qa-astrometry", conn=c, params={"refcat": "gaia-dr2"})
            run_stage("qa-background", conn=c)
        c.commit()
        path = write_report(c, out / "report.html", title="LCO kb76 against Gaia DR2", png_dir=out / "png")
    return {"path": path, "png": out / "png", "ids": ids, "url": db_url}


def test_diagnostic_pngs_written_and_sensible(calib_report, conn):
    from matplotlib.image import imread

    html = calib_report["path"].read_text()
    assert "section failed" not in html and "has not run" not in html
    sizes = {}
    for name in ("timeseries", "zeropoint_time", "residuals", "qa_astrometry_boxplots", "qa_background_boxplots"):
        f = calib_report["png"] / f"{name}.png"
        assert f.is_file(), name
        img = imread(f)
        sizes[name] = img.shape[:2]
        assert img.shape[0] >= 300 and img.shape[1] >= 600, (name, img.shape)
        grey = img[..., :3].mean(axis=2)
        assert grey.std() > 0.05 and len(np.unique((grey * 255).astype(int))) > 20, name  # not blank
    # the PNG files are the figures embedded in the page
    assert html.count("data:image/png;base64,") == len(list(calib_report["png"].glob("*.png")))
    # one residual panel per exposure with a zeropoint: the 4-detection copy has none
    with_zp = {r[0] for r in conn.execute("SELECT exposure_id FROM zeropoint WHERE zp IS NOT NULL").fetchall()}
    assert len(with_zp) == len(calib_report["ids"]) - 1
    fig, shown, n_total, _ = residuals_figure(conn)
    assert set(shown) == with_zp and n_total == len(with_zp)
    assert sum(ax.get_visible() for ax in fig.axes) == len(with_zp)
    assert f'data-panels="{len(with_zp)}"' in html
    # rejected stars are drawn when calibrate stores them (zeropoint.residuals -> rejected), else the
    # page says they are only counted
    stored = conn.execute("SELECT sum(jsonb_array_length(residuals->'rejected'->'residual')), "
                          "sum(n_matched - n_used) FROM zeropoint WHERE zp IS NOT NULL").fetchone()
    n_rej = residuals_figure(conn)[3]
    if stored[0] is None:
        assert n_rej == 0 and "rejected stars are counted in each panel" in html
    else:
        assert n_rej == stored[0] == stored[1] > 0 and "rejected stars are counted" not in html
    # 8 panels in rows of 6: two rows, taller than one
    assert sizes["residuals"][0] > 300
    # a cap keeps the page readable and says so
    fig, shown, n_total, _ = residuals_figure(conn, max_panels=3)
    assert len(shown) == 3 and n_total == len(with_zp) and shown[0] == calib_report["ids"][0]
    assert sum(ax.get_visible() for ax in fig.axes) == 3


def test_residual_panels_show_the_calibration(calib_report, conn):
    fig, shown, _, _ = residuals_figure(conn)
    rows = dict(conn.execute("SELECT exposure_id, zp FROM zeropoint WHERE zp IS NOT NULL").fetchall())
    base = rows[calib_report["ids"][0]]
    for ax, eid in zip(fig.axes, shown):
        title = ax.get_title()
        assert f"#{eid} G pp" in title and f"zp {rows[eid]:.3f}" in title
        # the used stars (blue dots) scatter about the zero line: median |residual| well under 0.1 mag
        y = np.concatenate([ln.get_ydata() for ln in ax.get_lines() if ln.get_marker() == "." or
                            ln.get_color() == "C0"])
        assert abs(np.median(y)) < 0.02 and np.median(np.abs(y)) < 0.1
        rms = float(title.split("rms ")[1])
        assert 0.005 < rms < 0.3
    # the copies' zeropoints follow the injected drift (fluxes dimmed by dzp: zp smaller by dzp)
    for (dzp, _, _), eid in zip(COPIES, calib_report["ids"][1:]):
        assert rows[eid] - base == pytest.approx(-dzp, abs=0.02)


def test_qa_boxplots_mark_the_flagged_exposures(calib_report, conn):
    astrom_bad, bkg_bad = calib_report["ids"][5], calib_report["ids"][6]  # copies 4 and 5
    fig, flagged = qa_boxplot_figure(conn, "qa-astrometry")

    def outliers(prefix):
        return sorted(r[0] for r in conn.execute("SELECT DISTINCT exposure_id FROM exposure_qa WHERE is_outlier "
                                                  "AND metric LIKE %s", (prefix + "%",)).fetchall())

    # what the stage flagged (the noisy copy; the 4-detection copy may be too) is what is marked
    assert astrom_bad in flagged and flagged == outliers("astrom_")
    ax = fig.axes[0]
    assert ax.get_title().startswith("median separation")
    assert str(astrom_bad) in [t.get_text() for t in ax.texts]
    # the upper fence drawn is Q3 + 1.5 IQR of the night's median separations
    from catdb.algorithms.robust import iqr_bounds

    v = np.array([r[0] for r in conn.execute("SELECT value FROM exposure_qa WHERE metric = 'astrom_sep_median' "
                                             "AND value IS NOT NULL").fetchall()])
    fences = np.concatenate([np.ravel(c.get_segments()) for c in ax.collections])
    assert np.any(np.isclose(fences, iqr_bounds(v).upper[0]))
    fig, flagged = qa_boxplot_figure(conn, "qa-background")
    assert flagged == outliers("bkg_") == [bkg_bad]
    html = calib_report["path"].read_text()
    assert f"exposure {astrom_bad}" in html and f"exposure {bkg_bad}" in html


def test_report_cli_png_dir(calib_report, tmp_path):
    from click.testing import CliRunner

    from catdb.cli.main import cli

    res = CliRunner().invoke(cli, ["--db", calib_report["url"], "report", "-o", str(tmp_path / "r.html"),
                                   "--png-dir", str(tmp_path / "figs"), "--max-panels", "4"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "figs" / "residuals.png").is_file() and (tmp_path / "figs" / "zeropoint_time.png").is_file()
    assert 'data-panels="4"' in (tmp_path / "r.html").read_text()
    (tmp_path / "file").write_text("x")
    res = CliRunner().invoke(cli, ["--db", calib_report["url"], "report", "-o", str(tmp_path / "r2.html"),
                                   "--png-dir", str(tmp_path / "file")])
    assert res.exit_code != 0 and "file" in res.output


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
def test_calib_report_renders_in_chromium(calib_report, tmp_path):
    img = screenshot(calib_report["path"], tmp_path, height=3000)
    grey = (img[..., :3].mean(axis=2) * 255).astype(int)
    assert len(np.unique(grey)) > 100 and grey.std() > 20


def test_report_keeps_the_callers_transaction(calib_report, tmp_path):
    """write_report reads inside the caller's open transaction (a savepoint) and leaves it open: the
    uncommitted row is in the page and still there after; a section that fails (its table renamed in
    the same transaction) rolls back only its own savepoint; nothing is committed."""
    from html import unescape

    from psycopg.pq import TransactionStatus

    from catdb.db.engine import connect

    url = calib_report["url"]
    with connect(url) as c:
        c.execute("INSERT INTO exposure (path, image_type, mjd_mid) VALUES ('uncommitted-frame.fits', 'science', "
                  "58568.5)")
        c.execute("ALTER TABLE ledger RENAME TO ledger_renamed")
        html = write_report(c, tmp_path / "r.html").read_text()
        assert c.info.transaction_status == TransactionStatus.INTRANS
        assert c.execute("SELECT count(*) FROM exposure WHERE path = 'uncommitted-frame.fits'").fetchone()[0] == 1
        assert "<td>uncommitted-frame.fits</td>" in html
        assert html.count("section failed") == 1 and 'relation "ledger" does not exist' in unescape(html)
        assert "<h2>Stage runs (provenance)</h2>" in html and html.count("<table") >= 2  # later sections stand
        c.rollback()
    with connect(url) as c:
        assert c.execute("SELECT count(*) FROM exposure WHERE path = 'uncommitted-frame.fits'").fetchone()[0] == 0
        assert c.execute("SELECT to_regclass('ledger') IS NOT NULL").fetchone()[0]


def test_report_json_is_the_pages_content(calib_report, tmp_path):
    """catdb report --format json: the page's sections, tables and figure data, as JSON without NaN."""
    import json

    from click.testing import CliRunner

    from catdb.cli.main import cli

    out = tmp_path / "r.json"
    res = CliRunner().invoke(cli, ["--db", calib_report["url"], "report", "--format", "json", "-o", str(out),
                                   "--max-panels", "4"])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    html = calib_report["path"].read_text()
    assert [s["title"] for s in data["sections"]] == re.findall(r"<h2>(.*?)</h2>", html)
    assert data["summary"]["n_exposures"] == len(calib_report["ids"])
    blocks = {s["key"]: s["blocks"] for s in data["sections"]}
    exp = [b for b in blocks["exposures"] if b["type"] == "table"][0]
    assert len(exp["rows"]) == len(calib_report["ids"]) and exp["columns"][0] == "id"
    assert {r[0] for r in exp["rows"]} == set(calib_report["ids"])
    # the residual figure's data: 4 panels (--max-panels) of used stars, ref - cal scattering about 0
    fig = [b for b in blocks["residuals"] if b["type"] == "figure"][0]
    panels = fig["data"]["panels"]
    assert len(panels) == 4 and fig["data"]["n_total"] == len(calib_report["ids"]) - 1
    y = np.array([v for p in panels for v in p["used"]["residual"]], dtype=float)
    assert y.size > 20 and abs(np.nanmedian(y)) < 0.02
    # the flagged exposures of qa-background are listed in its figure data as on the page
    qa = [b for b in blocks["qa"] if b["type"] == "figure" and b["data"]["stage"] == "qa-background"][0]
    assert qa["data"]["flagged"] == [calib_report["ids"][6]]
    assert f"exposure {calib_report['ids'][6]}" in html
    # --format from the suffix; --png-dir is refused with json
    res = CliRunner().invoke(cli, ["--db", calib_report["url"], "report", "-o", str(tmp_path / "s.json"),
                                   "--png-dir", str(tmp_path / "p")])
    assert res.exit_code != 0 and "--format json" in res.output
