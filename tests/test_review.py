"""Review decisions (table track_review) and the MPC/ADES exports that honour them.

The database: the real Lowell exposures with two tracks along the MANIFEST movers
(tests/track_db.py).  Decisions are written as the review page writes them
(:func:`catdb.review.record_decision`); the exports are run as a user runs them (the CLI).
The page itself, in Chromium, is tests/test_review_page.py.
"""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.export.mpc import parse_mpc80
from tests.lowell_night import needs_lowell
from tests.track_db import build

pytestmark = [needs_lowell, pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
              pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]


@pytest.fixture
def tracks(fresh_db_url):
    from catdb.db.engine import connect

    c = connect(fresh_db_url)
    info = build(c, n_frames=6)
    yield fresh_db_url, c, info["tracks"]["mover1"]["id"], info["tracks"]["mover2"]["id"], info
    c.close()


def run(url, *args, code=0):
    r = CliRunner().invoke(cli, ["--db", url, *args])
    assert r.exit_code == code, (r.output, r.exception)
    return r


def test_decision_rows_provenance_and_latest_wins(tracks):
    from catdb.errors import InputError
    from catdb.review import latest_decisions, record_decision, review_counts, review_history

    url, c, t1, t2, _ = tracks
    a = record_decision(c, t1, "artefact", reviewer="Ann", comment="  ")
    b = record_decision(c, t1, "real", reviewer="Bob", comment="moves at 9\"/h, clean PSF")
    assert a["comment"] is None and b["comment"] == "moves at 9\"/h, clean PSF"
    latest = latest_decisions(c)
    assert set(latest) == {t1} and latest[t1]["decision"] == "real" and latest[t1]["reviewer"] == "Bob"
    assert [h["decision"] for h in review_history(c, t1)] == ["real", "artefact"]     # history kept
    # each decision has its own review stage_run, finished ok, naming the track
    runs = c.execute("SELECT r.stage, r.status, r.input_ids, r.params->>'reviewer', r.finished_at IS NOT NULL "
                     "FROM track_review v JOIN stage_run r ON r.id = v.stage_run_id ORDER BY v.id").fetchall()
    assert runs == [("review", "ok", [t1], "Ann", True), ("review", "ok", [t1], "Bob", True)]
    assert review_counts(c) == {"tracks": 2, "reviewed": 1, "real": 1, "artefact": 0, "known": 0}
    for bad, word in ((dict(decision="maybe"), "expected one of real, artefact, known"),
                      (dict(track_id=10 ** 9), f"no track {10 ** 9}"), (dict(reviewer=" "), "reviewer"),
                      (dict(comment="x" * 5000), "at most 4000")):
        kw = {"track_id": t2, "decision": "real", "reviewer": "Ann", **bad}
        with pytest.raises(InputError, match=word):
            record_decision(c, kw.pop("track_id"), kw.pop("decision"), **kw)
    assert c.execute("SELECT count(*) FROM track_review").fetchone()[0] == 2            # nothing half-written
    assert c.execute("SELECT count(*) FROM stage_run WHERE stage = 'review'").fetchone()[0] == 2


def test_mpc_export_takes_real_and_known_only(tracks, tmp_path):
    from catdb.review import record_decision

    url, c, t1, t2, info = tracks
    out = tmp_path / "c.mpc"
    n = info["mjd"].size
    # nothing reviewed: refused with what to do, no file
    r = run(url, "export", "mpc", "-o", str(out), code=1)
    assert "2 candidates, none reviewed: review them with catdb serve (/review) or pass --all" in r.output
    assert not out.exists()
    # --all: everything
    run(url, "export", "mpc", "-o", str(out), "--all")
    assert len(parse_mpc80(out)) == 2 * n
    # mover2 artefact, mover1 unreviewed: none real/known
    record_decision(c, t2, "artefact", reviewer="Ann")
    r = run(url, "export", "ades", "-o", str(tmp_path / "c.psv"), code=1)
    assert "2 candidates, 1 reviewed (1 artefact), none real or known" in r.output
    # mover1 real: only mover1's observations, the rest said
    record_decision(c, t1, "real", reviewer="Ann")
    r = run(url, "export", "mpc", "-o", str(out))
    t = parse_mpc80(out)
    assert len(t) == n and set(t["designation"]) == {f"cdb{t1:04d}"}
    assert "left out: 1 artefact" in r.output
    # the latest decision wins: mover2 re-decided known -> exported too
    record_decision(c, t2, "known", reviewer="Bob", comment="2019 RB21")
    run(url, "export", "mpc", "-o", str(out))
    assert set(parse_mpc80(out)["designation"]) == {f"cdb{t1:04d}", "2019 RB21"}
    # a track asked by id that is decided artefact is refused unless --all
    record_decision(c, t2, "artefact", reviewer="Bob")
    r = run(url, "export", "mpc", "--track-id", str(t2), "-o", str(tmp_path / "one.mpc"), code=1)
    assert f"track {t2} is reviewed artefact" in r.output and "--all" in r.output
    run(url, "export", "mpc", "--track-id", str(t2), "-o", str(tmp_path / "one.mpc"), "--all")
    assert set(parse_mpc80(tmp_path / "one.mpc")["designation"]) == {"2019 RB21"}


def test_report_shows_the_decisions(tracks):
    from catdb.export.report import candidates_section
    from catdb.review import record_decision

    url, c, t1, t2, _ = tracks
    record_decision(c, t1, "real", reviewer="Ann", comment="clean & moving")
    html = candidates_section(c)
    assert "Review (catdb serve, /review): 1 of 2 candidates reviewed: 1 real, 0 known, 0 artefact" in html
    assert "<td>real</td><td>Ann</td>" in html and "clean &amp; moving" in html
    assert html.count("<h3>Track ") == 2          # the cutout strips are still drawn (real images)


def test_pipeline_export_step_needs_review_or_all(tracks, tmp_path):
    """A pipeline's tracks-mpc step: refused while nothing is reviewed, every candidate with all = true."""
    from catdb.errors import CatdbError
    from catdb.export import api

    url, c, t1, t2, info = tracks
    with pytest.raises(CatdbError, match="none reviewed"):
        api.export(c, "tracks-mpc", tmp_path / "a.mpc")
    assert api.export(c, "tracks-ades", tmp_path / "a.psv", all=True) == 2 * info["mjd"].size
    with pytest.raises(CatdbError, match="expected true or false"):
        api.export(c, "tracks-mpc", tmp_path / "a.mpc", all="maybe")


def test_track_stamps_use_the_stored_wcs_and_hdu(tracks, tmp_path):
    """The report's and review page's stamps are cut from the image's HDU with the exposure's stored WCS.

    The images here are copies whose WCS cards were removed (as for a night plate-solved by
    ``catdb stage solve``: the solution lives in ``exposure.wcs_header`` only), registered as
    each exposure's ``reduced`` product in HDU 1 of a two-HDU file.
    """
    import numpy as np
    from astropy.io import fits

    from catdb.db.copy import copy_table
    from catdb.db.provenance import finish_run, start_run
    from catdb.export.report import track_stamps

    url, c, t1, _, _ = tracks
    rows = c.execute("SELECT DISTINCT e.id, e.path FROM track_detection td JOIN detection d ON d.id = td.detection_id "
                     "JOIN exposure e ON e.id = d.exposure_id WHERE td.track_id = %s ORDER BY e.id", (t1,)).fetchall()
    wcs_keys = ("CTYPE", "CRVAL", "CRPIX", "CD1_", "CD2_", "CDELT", "PC1_", "PC2_", "PV1_", "PV2_", "CUNIT",
                "RADESYS", "EQUINOX", "WCSAXES", "LONPOLE", "LATPOLE")
    paths = []
    for eid, path in rows:  # loop over a handful of exposures (files)
        with fits.open(path) as hl:
            h = hl[1]
            data = np.asarray(h.data, dtype=np.float32)
            hdr = fits.Header([card for card in h.header.cards if not card.keyword.startswith(wcs_keys)
                               and card.keyword not in ("XTENSION", "PCOUNT", "GCOUNT")
                               and not card.keyword.startswith("Z")])
        out = tmp_path / f"nowcs_{eid}.fits"
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=hdr)]).writeto(out)
        paths.append(str(out))
    run_id = start_run(c, "test-reduce", {})
    copy_table(c, "image_product", {"exposure_id": np.array([r[0] for r in rows], dtype=np.int64),
                                    "path": np.array(paths, dtype=object)},
               constants={"kind": "reduced", "hdu": 1, "stage_run_id": run_id})
    finish_run(c, run_id, counts={"image_product": len(paths)})
    c.commit()
    stamps, labels = track_stamps(c, t1, max_epochs=len(rows), size_arcsec=20.0)
    assert len(stamps) == len(rows) == len(labels)
    for s in stamps:  # the mover is at the centre of each stamp: its brightest pixel near the middle
        assert np.isfinite(s).all()
        cy, cx = np.array(s.shape) // 2
        assert abs(np.unravel_index(np.nanargmax(s), s.shape)[0] - cy) <= 3
        assert abs(np.unravel_index(np.nanargmax(s), s.shape)[1] - cx) <= 3
