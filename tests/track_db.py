"""A database with the real Lowell exposures and two tracks along the MANIFEST movers.

``n_frames`` raw Lowell frames spread over the night (default 12 of 23) are ingested (headers only: real MJDs, WCS,
observatory code 688).  Detections are placed exactly on the MANIFEST's linear motion of mover 1 and mover 2 at
each frame's ``mjd_mid`` (with provenance: one ``test-movers`` stage_run), tracks made of
them, a relative zeropoint of 25.0 per exposure, and forced photometry of track 1 carrying a
1.25 h sinusoid (a 2.5 h double-peaked asteroid light curve).  Track 2 is identified as the
SkyBoT object ``2019 RB21`` of the recorded SkyBoT response in ``tests/data/skybot``.
"""
from __future__ import annotations

import numpy as np

from tests.lowell_night import frames, mover_radec

P_TRUE_H = 1.25
AMP = 0.2
TRACK_RMS = 0.31


def build(conn, n_frames: int = 12) -> dict:
    from catdb.db.copy import copy_table
    from catdb.ingest.load import ingest_images
    from catdb.db.provenance import finish_run, start_run

    ingest_images(conn, frames(n_frames))
    ex = np.array(conn.execute("SELECT id, mjd_mid FROM exposure WHERE image_type = 'science' ORDER BY mjd_mid")
                  .fetchall(), dtype=float)
    eid, mjd = ex[:, 0].astype(np.int64), ex[:, 1]
    n = eid.size
    run = start_run(conn, "test-movers", {"what": "synthetic detections on the MANIFEST movers"})
    tracks = {}
    with conn.transaction():
        copy_table(conn, "zeropoint", {"exposure_id": eid, "zp": np.full(n, 25.0), "zp_err": np.full(n, 0.02)},
                   constants={"band": "R", "method": "pp", "ok": True, "stage_run_id": run})
        for k, (mover, des, sky, mag0) in enumerate((("mover1", None, None, -10.8),
                                                     ("mover2", "2019 RB21", "2019 RB21", -9.5)), 1):
            ra, dec = mover_radec(mover, mjd)
            mag = mag0 + 0.05 * np.cos(np.arange(n))
            ids = np.array([r[0] for r in conn.execute(
                "INSERT INTO detection (exposure_id, number, ra, dec, ra_err, dec_err, mag_auto, magerr_auto, "
                "stage_run_id) SELECT * FROM unnest(%s::bigint[], %s::int[], %s::float8[], %s::float8[], "
                "%s::real[], %s::real[], %s::real[], %s::real[], %s::bigint[]) RETURNING id",
                (eid.tolist(), [90000 + k] * n, ra.tolist(), dec.tolist(), [0.04] * n, [0.04] * n,
                 mag.tolist(), [0.02] * n, [run] * n)).fetchall()], dtype=np.int64)
            i0 = n // 2
            dt_h = (mjd[-1] - mjd[0]) * 24
            cosd = np.cos(np.radians(dec[i0]))
            rra = (ra[-1] - ra[0]) * cosd * 3600 / dt_h
            rde = (dec[-1] - dec[0]) * 3600 / dt_h
            tid = conn.execute(
                "INSERT INTO track (n_detections, mjd_first, mjd_last, ra, dec, mjd_ref, rate_ra, rate_dec, rate, "
                "rms, mean_mag, status, designation, skybot_name, stage_run_id) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'candidate', %s, %s, %s) RETURNING id",
                (n, mjd[0], mjd[-1], ra[i0], dec[i0], mjd[i0], rra, rde, float(np.hypot(rra, rde)), TRACK_RMS,
                 float(mag.mean()), des, sky, run)).fetchone()[0]
            copy_table(conn, "track_detection", {"detection_id": ids, "residual": np.zeros(n)},
                       constants={"track_id": tid, "outlier": False})
            tracks[mover] = {"id": tid, "ra": ra, "dec": dec, "mag": mag + 25.0, "detection_ids": ids}
        t1 = tracks["mover1"]
        fmag = 17.0 + AMP * np.sin(2 * np.pi * mjd / (P_TRUE_H / 24))
        copy_table(conn, "forced_source", {"exposure_id": eid, "ra": t1["ra"], "dec": t1["dec"], "mag": fmag,
                                           "mag_err": np.full(n, 0.01), "flux": 10 ** (-0.4 * (fmag - 25))},
                   constants={"track_id": t1["id"], "band": "R", "flags": 0, "stage_run_id": run})
        finish_run(conn, run, inputs=eid.tolist(), counts={"track": 2, "forced_source": n})
    conn.commit()
    return {"exposure_ids": eid, "mjd": mjd, "tracks": tracks, "forced_mag": fmag, "run_id": run}
