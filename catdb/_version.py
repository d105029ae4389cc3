"""catdb's version (of the installed distribution), in a module of its own so that any layer may
import it without importing the ``catdb`` package's API (:mod:`catdb` wraps the upper layers)."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("catdb")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.1.0"
