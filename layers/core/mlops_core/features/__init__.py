"""The feature store: feature views declared in the repository and registered as data,
materialized from S3 sources into the online store (the features table), read by entity id.

``entities`` (views, runs, freshness), ``sources`` (CSV / JSON Lines -> typed rows),
``materialization`` (latest row per entity, newest wins, items; no AWS), ``online`` (the
online store's read API, for lookup and inference), ``repository`` (views and run records in
the metadata table), ``service`` (apply, materialize, dispatch, freshness), ``events``.
"""
