"""Database access: engine and connections, the embedded server, spatial backend detection."""
from .engine import connect, engine, resolve_url
from .server import EmbeddedServer, default_data_dir

__all__ = ["connect", "engine", "resolve_url", "EmbeddedServer", "default_data_dir"]
