"""Table definitions (SQLAlchemy Core): the one source of truth of catdb's schema."""
from .tables import (QUALITY_FLAGS, WCS_ABSOLUTE, WCS_STATUS, WCS_USABLE, catdb_info, column_description, column_unit,
                     detection, detection_object, exposure, exposure_qa, exposure_summary, forced_source, image_product,
                     ledger, lightcurve_period, metadata, object_, refcat_source, stage_run, survivor, track,
                     track_detection, zeropoint)
from .calib_tables import exposure_set
from .xmatch_tables import xmatch
from .refcat_tables import refcat_region
from .skybot_tables import skybot_object, skybot_query
from .lightcurve_tables import lightcurve_session, lightcurve_session_point
from .ephemeris_tables import ephemeris, ephemeris_target
from .review_tables import DECISIONS, EXPORTED_DECISIONS, track_review

#: every table of every schema module above, in dependency order
ALL_TABLES = list(metadata.sorted_tables)

__all__ = [n for n in dir() if not n.startswith("_")]
