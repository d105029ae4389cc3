"""Derive ``vizier_gaia2_I_345_lco.ecsv`` from the shared SCAMP Gaia DR2 reference catalogue.

Run from the repository root: ``PYTHONPATH=. python tests/data/recorded/make_gaia_dr2_lco.py``.  The output is
what astroquery's ``Vizier.query_region(..., catalog='I/345/gaia2')`` returns (an astropy Table with
VizieR's column names and units) for the stars of ``../shared/data/lco/GAIA-DR2.cat``.
"""
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import Table

from tests.helpers import SHARED_DATA

src = fits.open(SHARED_DATA / "lco" / "GAIA-DR2.cat")["LDAC_OBJECTS"].data
t = Table()
# The SCAMP file carries no Gaia source_id: 'Source' is the 1-based row number in GAIA-DR2.cat (stable).
t["Source"] = np.arange(1, len(src) + 1, dtype=np.int64)
t["RA_ICRS"] = np.asarray(src["XWIN_WORLD"], dtype=float) * u.deg
t["DE_ICRS"] = np.asarray(src["YWIN_WORLD"], dtype=float) * u.deg
t["e_RA_ICRS"] = np.asarray(src["ERRAWIN_WORLD"], dtype=float) * 3.6e6 * u.mas
t["e_DE_ICRS"] = np.asarray(src["ERRBWIN_WORLD"], dtype=float) * 3.6e6 * u.mas
t["Gmag"] = np.asarray(src["MAG"], dtype=float) * u.mag
t["e_Gmag"] = np.asarray(src["MAGERR"], dtype=float) * u.mag
t["Epoch"] = np.asarray(src["OBSDATE"], dtype=float) * u.yr
t.meta["description"] = "Derived from shared/data/lco/GAIA-DR2.cat (LCOGT/neoexchange, GPL-3.0)"
t.write(Path(__file__).with_name("vizier_gaia2_I_345_lco.ecsv"), format="ascii.ecsv", overwrite=True)
