"""Exceptions raised by catdb.

Every error that comes from bad input names the file, the row or keyword, and
what was expected, so a user can fix the input without reading a traceback.
The CLI turns :class:`CatdbError` into a one-line message and a non-zero exit.
"""
from __future__ import annotations


class CatdbError(Exception):
    """Base class of catdb's own errors (printed without traceback by the CLI)."""


class InputError(CatdbError):
    """Bad input file or value.

    Parameters
    ----------
    message : str
        What was wrong and what was expected.
    path : str or os.PathLike, optional
        The file at fault.
    row : int, optional
        1-based row (or card, or line) number within the file.
    keyword : str, optional
        Header keyword or column name at fault.
    """

    def __init__(self, message, *, path=None, row=None, keyword=None):
        self.path = None if path is None else str(path)
        self.row = row
        self.keyword = keyword
        self.message = message
        parts = []
        if self.path:
            parts.append(self.path)
        if row is not None:
            parts.append(f"row {row}")
        if keyword:
            parts.append(f"{keyword}")
        where = ": ".join([", ".join(parts)]) if parts else ""
        super().__init__(f"{where}: {message}" if where else message)


class DatabaseUnavailable(CatdbError):
    """The database server cannot be reached (not running, wrong URL, ...)."""


class StageError(CatdbError):
    """A stage failed; its stage_run row records the error."""
