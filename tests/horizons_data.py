"""JPL Horizons observer-table answers in Horizons' own text format, for the ephemeris tests.

:func:`horizons_text` writes an answer the way the Horizons API does with ``format=text``,
``CSV_FORMAT=YES``, ``CAL_FORMAT=BOTH``, ``ANG_FORMAT=DEG`` and ``QUANTITIES='1,3,9,19,20,24,36'``
(what :func:`catdb.ingest.horizons.query_horizons` asks): the layout, the header keys and the
column labels are those of the real answers astroquery records in
``astroquery/jplhorizons/tests/data`` (copied to ``tests/data/horizons/``; the column labels
of quantities 1, 3, 9, 19, 20, 24 and 36 in ``ceres_ephemerides_single.txt``).

``python -m tests.horizons_data`` writes ``tests/data/horizons/lowell42_5945_688.txt``: the
"recorded" answer for target 5945 from Lowell's Anderson Mesa station (MPC 688, site from the
frames' ``LONGITUD``/``LATITUDE``/``ALTITUDE``) at the mid-times of the 23 Lowell frames of
``data/lowell42-5945`` -- **not** a live Horizons call (the build machine is offline):
RA/Dec are the MANIFEST positions of mover 1 ((5945) Roachapproach, measured on these frames)
interpolated linearly, the rates those of the two MANIFEST points; magnitude, distances, phase
angle and uncertainties are ``n.a.`` (catdb cannot know Horizons' numbers offline).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.time import Time

OUT = Path(__file__).resolve().parent / "data" / "horizons" / "lowell42_5945_688.txt"

COLUMNS = ["Date__(UT)__HR:MN:SC.fff", "Date_________JDUT", "", "", "R.A._(ICRF)", "DEC_(ICRF)", "dRA*cosD",
           "d(DEC)/dt", "APmag", "S-brt", "r", "rdot", "delta", "deldot", "S-T-O", "RA_3sigma", "DEC_3sigma", ""]


def _date(t):
    """'2019-Mar-26 02:30:01.100' (Horizons' calendar date, UT, milliseconds)."""
    return t.to_datetime().strftime("%Y-%b-%d %H:%M:%S.%f")[:-3]


def _fmt(v, spec):
    return "n.a." if v is None or not np.isfinite(v) else format(v, spec)


def horizons_text(target_name, mjd, ra, dec, rate_ra, rate_dec, *, site_name, geodetic, mag=None, r=None,
                  delta=None, alpha=None, ra_3sigma=None, dec_3sigma=None, note="") -> str:
    """A Horizons observer-table answer (text) with one row per epoch.

    Parameters
    ----------
    target_name : str
        ``Target body name``.
    mjd, ra, dec, rate_ra, rate_dec : array_like, shape (N,)
        MJD UTC, deg, deg, "/h (dRA cos Dec), "/h.
    site_name : str
        ``Center-site name`` (``'GEOCENTRIC'`` for the geocentre).
    geodetic : tuple
        (E-lon deg, lat deg, height km) of the site.
    mag, r, delta, alpha, ra_3sigma, dec_3sigma : array_like or None
        None: ``n.a.``.
    """
    n = len(mjd)

    def col(v):
        return np.full(n, np.nan) if v is None else np.broadcast_to(np.asarray(v, dtype=float), (n,))

    mag, r, delta, alpha, s_ra, s_dec = map(col, (mag, r, delta, alpha, ra_3sigma, dec_3sigma))
    t = Time(np.asarray(mjd, dtype=float), format="mjd", scale="utc")
    jd = np.asarray(mjd, dtype=float) + 2400000.5
    stars = "*" * 79
    lines = ["API VERSION: 1.2", "API SOURCE: NASA/JPL Horizons API", "", stars,
             "Ephemeris / API_USER                                              / Horizons", stars,
             f"Target body name: {target_name:<32}{{source: recorded for catdb tests}}",
             "Center body name: Earth (399)                     {source: DE441}",
             f"Center-site name: {site_name}", stars,
             f"Start time      : A.D. {_date(t[0])[:-2]} UT",
             f"Stop  time      : A.D. {_date(t[-1])[:-2]} UT",
             "Step-size       : 0 steps", stars,
             f"Center geodetic : {geodetic[0]:.8f},{geodetic[1]:.8f},{geodetic[2]:.7f} {{E-lon(deg),Lat(deg),Alt(km)}}",
             "Atmos refraction: NO (AIRLESS)", "RA format       : DEG", "Time format     : BOTH",
             "Table format    : Comma Separated Values (spreadsheet)", stars,
             " " + ", ".join(COLUMNS).rstrip(), stars, "$$SOE"]
    for k in range(n):  # one text row per epoch (test data)
        date = _date(t[k])
        vals = [f" {date}", f"{jd[k]:.9f}", " ", " ", f"{ra[k]:.9f}", f"{dec[k]:.9f}", f"{rate_ra[k]:.5f}",
                f"{rate_dec[k]:.5f}", _fmt(mag[k], ".3f"), "n.a.", _fmt(r[k], ".12f"), "n.a.", _fmt(delta[k], ".14f"),
                "n.a.", _fmt(alpha[k], ".4f"), _fmt(s_ra[k], ".3f"), _fmt(s_dec[k], ".3f"), ""]
        lines.append(", ".join(vals))
    lines += ["$$EOE", stars, "Column meaning: see the Horizons manual, https://ssd.jpl.nasa.gov/horizons/manual.html",
              *([note] if note else []), stars]
    return "\n".join(lines) + "\n"


def lowell_epochs():
    """Mid-times (MJD UTC), site (E-lon, lat, height km) and MPC code of the 23 Lowell frames."""
    from catdb.ingest.headers import exposure_metadata, read_header
    from tests.lowell_night import RAW

    metas = [exposure_metadata(read_header(p)[0], "lowell42") for p in RAW]
    mjd = np.array([m["mjd_mid"] for m in metas])
    m0 = metas[0]
    return mjd, (m0["site_lon"], m0["site_lat"], m0["site_height"] / 1000.0), m0["observatory_code"]


def mover1_rates():
    """(dRA cos Dec, dDec) "/h of MANIFEST mover 1 from its two positions."""
    from tests.lowell_night import MOVERS

    ((t1, r1, d1), (t2, r2, d2)), _ = MOVERS["mover1"]
    dt_h = (t2 - t1) * 24
    return (r2 - r1) * np.cos(np.radians((d1 + d2) / 2)) * 3600 / dt_h, (d2 - d1) * 3600 / dt_h


def main():
    from tests.lowell_night import mover_radec

    mjd, geo, code = lowell_epochs()
    ra, dec = mover_radec("mover1", mjd)
    rra, rdec = mover1_rates()
    OUT.write_text(horizons_text(
        "5945 Roachapproach", mjd, ra, dec, np.full(mjd.size, rra), np.full(mjd.size, rdec),
        site_name=f"({code}) Lowell Observatory, Anderson Mesa Station", geodetic=geo,
        note="Written by tests/horizons_data.py for catdb's tests: positions from MANIFEST mover 1, NOT a live "
             "Horizons answer."))
    print(f"wrote {OUT} ({mjd.size} epochs)")


if __name__ == "__main__":
    main()
