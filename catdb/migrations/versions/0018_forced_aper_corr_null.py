"""forced_source.aper_corr is NULL when no aperture correction was measured (was 0), flag 32

Revision ID: 0018
Revises: 0017

The DDL is written out here as it was at this revision (a migration does not import the live
schema).  A correction of 0 mag looked like a measurement ("the aperture holds all the light")
where none was made (option off, or no usable bright star on the exposure).  From this revision
the ``forced`` stage writes NULL there and sets the new flag bit 32 ("no aperture correction:
mag is the aperture magnitude").  Existing rows are kept: those with ``aper_corr = 0`` (the stage
never measured exactly 0: a growth-curve fraction below 1 gives a negative correction) get NULL
and flag 32.  The comments of ``aper_corr``, ``mag`` and ``flags`` say so (``flags`` also gains
bit 16, bad background annulus, which the stage has set since migration 0010 without the comment
saying it).  Downgrade writes 0 back where the flag is set and clears the flag.
"""
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

AC_BEFORE = ("Aperture correction to total flux: 2.5 log10 of the bright stars' median fraction of their flux "
             "inside aperture_radius (growth curve; <= 0; 0 when not measured) [mag]")
AC_AFTER = ("Aperture correction to total flux: 2.5 log10 of the bright stars' median fraction of their flux "
            "inside aperture_radius (growth curve; <= 0; NULL when not measured, flag 32) [mag]")
MAG_BEFORE = "Calibrated total magnitude: -2.5 log10(flux) + aper_corr + zeropoint [mag]"
MAG_AFTER = ("Calibrated total magnitude: -2.5 log10(flux) + aper_corr + zeropoint (the aperture magnitude "
             "when aper_corr is NULL, flag 32) [mag]")
FLAGS_BEFORE = "1 edge, 2 saturated, 4 masked pixels, 8 no zeropoint"
FLAGS_AFTER = ("1 edge, 2 saturated, 4 masked pixels, 8 no zeropoint, 16 bad background annulus, "
               "32 no aperture correction")


def upgrade() -> None:
    op.execute("UPDATE forced_source SET aper_corr = NULL, flags = flags | 32 WHERE aper_corr = 0")
    op.alter_column("forced_source", "aper_corr", comment=AC_AFTER, existing_comment=AC_BEFORE)
    op.alter_column("forced_source", "mag", comment=MAG_AFTER, existing_comment=MAG_BEFORE)
    op.alter_column("forced_source", "flags", comment=FLAGS_AFTER, existing_comment=FLAGS_BEFORE)


def downgrade() -> None:
    op.execute("UPDATE forced_source SET aper_corr = 0, flags = flags & ~32 WHERE flags & 32 = 32")
    op.alter_column("forced_source", "flags", comment=FLAGS_BEFORE, existing_comment=FLAGS_AFTER)
    op.alter_column("forced_source", "mag", comment=MAG_BEFORE, existing_comment=MAG_AFTER)
    op.alter_column("forced_source", "aper_corr", comment=AC_BEFORE, existing_comment=AC_AFTER)
