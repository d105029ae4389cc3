"""Forced photometry of the Lowell night's bright static stars: light curves flat to their expected noise.

The real Lowell 42-inch night (MANIFEST ``lowell42-5945``, all 23 frames: reduced, extracted,
cached by tests/lowell_night.py) is associated and calibrated (relative ensemble zeropoints:
no deep reference catalogue offline); the forced stage measures the bright static objects on
every frame; :func:`catdb.export.diagnostics.rms_vs_mag` compares each star's RMS over the night
with the median error its photometry claims.
"""
from __future__ import annotations

import numpy as np
import pytest

from catdb.stages import run_stage
from tests.lowell_night import needs_lowell, night_db_url

pytestmark = [needs_lowell, pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
              pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]


@pytest.fixture(scope="module")
def night(pg_server, template_db):
    from catdb.db.engine import connect

    url, info = night_db_url(pg_server, template_db, steps=("associate", "calibrate-relative"))
    c = connect(url)
    yield c, info
    c.close()


#: aperture radius [pix] (1.1"/pix: 8.8"): large enough that the fraction of a star's light outside it
#: changes little with the seeing; the relative zeropoints are fitted on MAG_AUTO (total) magnitudes
RADIUS = "8"
#: bright stars: relative magnitudes (the reference frame's zeropoint is 0), ~100 stars of 161 measured
BRIGHT = -11.0


@pytest.fixture(scope="module")
def forced(night):
    c, info = night
    res = run_stage("forced", conn=c, params={"objects": "n_epochs >= 23 AND kind = 'static' AND mean_mag < -10.5",
                                              "radius": RADIUS, "use_raw": "true"}, progress=False)
    c.commit()
    return res


def test_bright_star_light_curves_are_flat_to_their_expected_noise(night, forced, tmp_path):
    from catdb.export.diagnostics import binned_rms, plot_rms_vs_mag, rms_vs_mag

    c, info = night
    n_exp = len(info["exposure_ids"])
    assert n_exp == 23 and forced.counts["exposures_measured"] == n_exp
    t = rms_vs_mag(c)
    assert t.meta["n_exposures"] == n_exp
    assert len(t) == forced.counts["targets"]["objects"] > 100
    assert np.median(t["n"]) == n_exp            # bright stars: measured and unflagged on every frame
    assert str(t["rms"].unit) == "mag" and np.all(np.diff(t["mean_mag"]) >= 0)
    bins = binned_rms(t, 0.5)
    print(f"\nforced photometry r = {RADIUS} pix, {len(t)} static objects on {n_exp} frames (relative mags)")
    bins.pprint(max_lines=-1, max_width=-1)
    bright = t[t["mean_mag"] < BRIGHT]
    med_rms, med_err = float(np.median(bright["rms"])), float(np.median(bright["median_err"]))
    print(f"{len(bright)} stars brighter than {BRIGHT}: median RMS {med_rms:.4f} mag, median expected error "
          f"{med_err:.4f} mag, ratio {med_rms / med_err:.2f}")
    assert len(bright) >= 50
    assert med_rms < 0.02                         # flat to a hundredth of a magnitude or better
    assert 0.8 < med_rms / med_err < 2.5          # at the noise the photometry claims (plus a small floor)
    # the RMS follows the noise: fainter stars scatter more, as their errors say
    assert np.all(np.diff(bins["median_err"]) > 0)
    assert np.corrcoef(np.log(t["rms"]), np.log(t["median_err"]))[0, 1] > 0.7
    png = plot_rms_vs_mag(t, tmp_path / "rms.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stats_match_the_light_curves_they_summarise(night, forced):
    """One star's row of rms_vs_mag is the numpy mean / std / median error of its forced rows."""
    from catdb.export.diagnostics import rms_vs_mag
    from catdb.export.lightcurve import lightcurve

    c, _ = night
    oid = int(c.execute("SELECT object_id FROM forced_source WHERE object_id IS NOT NULL ORDER BY mag LIMIT 1")
              .fetchone()[0])
    row = rms_vs_mag(c, [oid])[0]
    ref = np.array(c.execute("SELECT mag, mag_err FROM forced_source WHERE object_id = %s AND flags = 0 "
                             "AND mag IS NOT NULL", (oid,)).fetchall())
    assert row["n"] == len(ref)
    assert row["mean_mag"] == pytest.approx(ref[:, 0].mean(), abs=1e-9)
    assert row["rms"] == pytest.approx(ref[:, 0].std(ddof=1), abs=1e-9)
    assert row["median_err"] == pytest.approx(np.median(ref[:, 1]), abs=1e-9)
    lc = lightcurve(c, object=oid, source="forced")
    assert len(lc) >= row["n"] and set(lc["source"]) == {"forced"} and str(lc["mjd"].unit) == "d"


def test_bad_inputs(night):
    from catdb.errors import InputError
    from catdb.export.diagnostics import binned_rms, rms_vs_mag

    c, _ = night
    with pytest.raises(InputError, match="no object 999999999"):
        rms_vs_mag(c, [999999999])
    with pytest.raises(InputError, match="min_points"):
        rms_vs_mag(c, min_points=1)
    with pytest.raises(InputError, match="bin width"):
        binned_rms(rms_vs_mag(c), 0)
