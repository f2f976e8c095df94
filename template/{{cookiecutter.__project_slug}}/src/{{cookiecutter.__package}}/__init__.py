"""{{ cookiecutter.plugin_name }}: a Fulcrum plugin.

This module is the plugin: the host finds it through the ``fulcrum`` entry point named
``{{ cookiecutter.plugin_id }}`` and registers the hook implementations imported here. The manifest
is ``fulcrum-plugin.toml`` beside this file; each hook sees only what the granted scopes allow.
"""
{% if cookiecutter.feed %}
from {{ cookiecutter.__package }}.feeds import feed_items
{%- endif %}
{%- if cookiecutter.home_slots %}
from {{ cookiecutter.__package }}.home import home_slot_campaigns, home_slot_offers
{%- endif %}
{%- if cookiecutter.transactions %}
from {{ cookiecutter.__package }}.orders import execute_transaction, register_transaction_types
{%- endif %}
{%- if cookiecutter.home_slots or cookiecutter.search or cookiecutter.feed %}
from {{ cookiecutter.__package }}.pages import page
{%- endif %}
{%- if cookiecutter.search %}
from {{ cookiecutter.__package }}.search import search
{%- endif %}

__all__ = [
{%- if cookiecutter.transactions %}
    "execute_transaction",
{%- endif %}
{%- if cookiecutter.feed %}
    "feed_items",
{%- endif %}
{%- if cookiecutter.home_slots %}
    "home_slot_campaigns",
    "home_slot_offers",
{%- endif %}
{%- if cookiecutter.home_slots or cookiecutter.search or cookiecutter.feed %}
    "page",
{%- endif %}
{%- if cookiecutter.transactions %}
    "register_transaction_types",
{%- endif %}
{%- if cookiecutter.search %}
    "search",
{%- endif %}
]
