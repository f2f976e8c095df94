"""``fulcrum dev``: a local host running one plugin under development, showing each of its hook calls."""

from fulcrum_core.devhost.echo import EchoStats
from fulcrum_core.devhost.project import DevError, DevPlugin, find_dev_plugin
from fulcrum_core.devhost.state import prepare_client, prepare_state

__all__ = ["DevError", "DevPlugin", "EchoStats", "find_dev_plugin", "prepare_client", "prepare_state"]
