"""Stage ``movers`` on a night of three interleaved pointings: one search per field.

Small synthetic FITS_LDAC catalogues (the header and writer of ``bench/survey.py``): three
neighbouring tiles of a survey (0.52 deg apart, 0.73 deg footprints: their edges overlap)
observed in turn, 12 visits each, 150 random orphan detections per exposure and one asteroid per
tile.  The next exposures in time are of the other tiles, so the stage must split the night by
pointing, not by footprint overlap (which joins all three).
"""
from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS

from bench import survey
from catdb.ingest.load import ingest_catalogs
from catdb.stages import run_stage

pytestmark = [pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning",
                                        "ignore::astropy.wcs.FITSFixedWarning"),
              pytest.mark.spatial_backends]

FIELDS = tuple((150.0 + k * 0.52 / np.cos(np.radians(5.0)), 5.0) for k in range(3))
RATES = ((25.0, -10.0), (-40.0, 30.0), (60.0, 5.0))   # "/h (RA cos dec, Dec) of each tile's asteroid


def _night(tmp_path, rng, visits=12, n_orphans=150, start=61000.1):
    paths = []
    for v in range(visits):
        for f, (ra_c, dec_c) in enumerate(FIELDS):
            mjd0 = start + (len(FIELDS) * v + f) * 150 / 86400
            hdr = survey._header(ra_c, dec_c, mjd0, f, 0, v, 1.2, 1.1)
            w = WCS(hdr)
            x, y = rng.uniform(1, survey.NAXIS, (2, n_orphans))
            ra, dec = w.all_pix2world(x, y, 1)
            t = (mjd0 + 30 / 86400 - start) * 24 - 1.0                    # hours from the reference
            vra, vdec = RATES[f]
            ra_a = ra_c + 0.05 + vra * t / 3600 / np.cos(np.radians(dec_c)) + rng.normal(0, 0.1) / 3600
            dec_a = dec_c - 0.03 + vdec * t / 3600 + rng.normal(0, 0.1) / 3600
            ra, dec = np.append(ra, ra_a), np.append(dec, dec_a)
            x, y = w.all_world2pix(ra, dec, 1)
            n = ra.size
            cols = {"NUMBER": np.arange(1, n + 1, dtype=np.int32), "X_IMAGE": x, "Y_IMAGE": y,
                    "ALPHA_J2000": ra, "DELTA_J2000": dec,
                    "ERRAWIN_WORLD": np.full(n, 0.1 / 3600, np.float32),
                    "ERRBWIN_WORLD": np.full(n, 0.1 / 3600, np.float32),
                    "FLUX_AUTO": np.full(n, 1000.0, np.float32), "FLUXERR_AUTO": np.full(n, 20.0, np.float32),
                    "MAG_AUTO": np.full(n, -7.5, np.float32), "MAGERR_AUTO": np.full(n, 0.02, np.float32),
                    "FLAGS": np.zeros(n, np.int16)}
            p = tmp_path / f"f{f}_v{v:02d}.ldac"
            survey._write_ldac(p, hdr, cols)
            paths.append(str(p))
    return paths


def test_night_of_three_tiles_searched_tile_by_tile(conn, tmp_path):
    paths = _night(tmp_path, np.random.default_rng(5))
    ingest_catalogs(conn, paths)
    res = run_stage("movers", conn=conn, params={"source": "all", "min_detections": "8", "snr_min": "0"})
    conn.commit()
    assert res.counts["nights"] == 1 and res.counts["fields"] == 3
    cand = conn.execute("SELECT n_detections, rate_ra, rate_dec FROM track WHERE status = 'candidate' "
                        "ORDER BY rate_ra").fetchall()
    print(cand, res.counts)
    assert len(cand) == 3
    for (n_det, vra, vdec), want in zip(cand, sorted(RATES)):
        assert n_det >= 11 and vra == pytest.approx(want[0], abs=0.5) and vdec == pytest.approx(want[1], abs=0.5)
    # one ledger per field: the search rows name their field (smallest exposure id of the group)
    fields = conn.execute("SELECT DISTINCT params->>'field' FROM ledger WHERE stage_run_id = %s",
                          (res.run_id,)).fetchall()
    assert len(fields) == 3


def test_night_across_utc_midnight_without_site_is_one_night(fresh_db_url, tmp_path):
    """No ``exposure.night`` and no ``site_lon`` (nothing says where the telescope is), the visits running from
    23:31 to 00:59 UTC: one observing session, searched whole (a UTC date would cut every track at midnight)."""
    from catdb.db.engine import connect

    conn = connect(fresh_db_url)
    paths = _night(tmp_path, np.random.default_rng(5), start=61000.98)
    ingest_catalogs(conn, paths)
    conn.execute("UPDATE exposure SET night = NULL, site_lon = NULL")
    res = run_stage("movers", conn=conn, params={"source": "all", "min_detections": "8", "snr_min": "0"})
    conn.commit()
    assert res.counts["nights"] == 1 and res.counts["night_from"] == {"time_gap": 36}
    cand = conn.execute("SELECT n_detections FROM track WHERE status = 'candidate'").fetchall()
    assert len(cand) == 3 and all(n >= 11 for (n,) in cand)
    night = conn.execute("SELECT DISTINCT params->>'night' FROM ledger WHERE stage_run_id = %s",
                         (res.run_id,)).fetchall()
    assert len(night) == 1 and night[0][0].startswith("session starting") and "T23:" in night[0][0]
    conn.close()


def test_track_mean_mag_on_one_scale(fresh_db_url, tmp_path):
    """Zeropoints on all exposures but the last visits' (calibration failed there): a track's mean magnitude is
    the calibrated one, not pulled towards the raw ``mag_auto`` (-7.5) of the uncalibrated exposures."""
    from catdb.db.copy import copy_table
    from catdb.db.engine import connect
    from catdb.db.provenance import finish_run, start_run

    conn = connect(fresh_db_url)
    ingest_catalogs(conn, _night(tmp_path, np.random.default_rng(5)))
    ids = np.array([r[0] for r in conn.execute("SELECT id FROM exposure ORDER BY mjd_mid")], dtype=np.int64)
    run = start_run(conn, "test-calibrate", {})
    calibrated = ids[:-6]  # the last two visits of the three tiles: no zeropoint
    copy_table(conn, "zeropoint", {"exposure_id": calibrated, "zp": np.full(calibrated.size, 25.0)},
               constants={"band": "r", "method": "pp", "ok": True, "stage_run_id": run})
    finish_run(conn, run, counts={"zeropoint": int(calibrated.size)})
    res = run_stage("movers", conn=conn, params={"source": "all", "min_detections": "8", "snr_min": "0"})
    conn.commit()
    mags = [r[0] for r in conn.execute("SELECT mean_mag FROM track WHERE status = 'candidate'")]
    assert len(mags) == 3, res.counts
    assert mags == pytest.approx([17.5] * 3, abs=1e-3)      # -7.5 + 25 on every calibrated exposure
    conn.close()
