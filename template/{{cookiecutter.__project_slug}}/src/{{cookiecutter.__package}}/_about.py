"""Who this plugin is: its id, its display name and the deep link into it, shared by every hook."""

from __future__ import annotations

from fulcrum_sdk import Action, LocalizedText

__all__ = ["ENTRY", "GUIDE", "NAME", "PLUGIN_ID"]

PLUGIN_ID = "{{ cookiecutter.plugin_id }}"
NAME = LocalizedText(
    zh_CN="{{ cookiecutter.plugin_name }}",
    en={% if cookiecutter.plugin_name_en %}"{{ cookiecutter.plugin_name_en }}"{% else %}None{% endif %},
)
ENTRY = Action(uri=f"fulcrum://{PLUGIN_ID}/home")
"""Deep links into the plugin, ``fulcrum://<id>/<path>``, open its ``page`` hook at ``<path>``
(``GET /v1/pages/<id>/<path>``, see ``pages.py``): the app has no screens of its own for a plugin."""
GUIDE = Action(uri=f"fulcrum://{PLUGIN_ID}/guide")
