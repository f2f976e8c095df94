"""The one alembic history for every table of the platform (host and registry), shipped in the wheel.

Apply it with ``fulcrum db upgrade`` or ``Database(url).upgrade()``. Revision files live in
``versions/``, named ``YYYYMMDD_NN_topic.py`` with the same string as their revision id; each new
revision's ``down_revision`` is the previous head, so the history stays linear.
"""
