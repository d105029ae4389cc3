"""The report's light-curve figure marks the period the lightcurve stage stored and draws the
Lomb-Scargle periodogram of catdb.algorithms.lightcurve (no re-fit, no second periodogram code).

No database and no data needed: the figure block is built as report_data builds it.
"""
from __future__ import annotations

import numpy as np
import pytest
from astropy.timeseries import LombScargle

from catdb.export.figures import lightcurve


def _block(period_stored_h):
    rng = np.random.default_rng(3)
    mjd = 58568.1 + np.sort(rng.uniform(0, 0.4, 60))  # one night, ~10 h
    err = rng.uniform(0.01, 0.03, mjd.size)
    mag = 15.0 + 0.2 * np.sin(2 * np.pi * mjd * 24 / 3.1) + rng.normal(0, err)
    return {"track_id": 1, "period": period_stored_h, "mjd": list(mjd), "mag": list(mag), "mag_err": list(err)}


def test_figure_marks_the_stored_period_and_draws_the_lomb_scargle_power():
    d = _block(3.0)  # the stored value, deliberately not the periodogram's peak (3.1 h)
    fig = lightcurve(d)
    ax = fig.axes[1]
    power_line, marker = ax.lines[0], ax.lines[1]
    assert np.allclose(marker.get_xdata(), 3.0)
    assert "3.00 h" in ax.get_legend().get_texts()[0].get_text()
    period_h, power = power_line.get_xdata(), power_line.get_ydata()
    assert period_h[np.argmax(power)] == pytest.approx(3.1, rel=0.03)
    # the generalised (floating-mean, weighted) periodogram is astropy's standard Lomb-Scargle power
    t, mag, err = (np.asarray(d[k]) for k in ("mjd", "mag", "mag_err"))
    expect = LombScargle(t, mag, err).power(24.0 / period_h)
    assert power == pytest.approx(expect, abs=1e-8)


def test_missing_errors_give_the_unweighted_periodogram():
    d = _block(3.1)
    d["mag_err"][5] = None
    power = lightcurve(d).axes[1].lines[0]
    t, mag = np.asarray(d["mjd"]), np.asarray(d["mag"])
    expect = LombScargle(t, mag).power(24.0 / power.get_xdata())
    assert power.get_ydata() == pytest.approx(expect, abs=1e-8)
