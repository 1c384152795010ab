"""The model registry: models, immutable numbered versions, movable aliases, promotion
policies, the audit trail and model cards.

``entities`` (what is stored), ``signature`` (what a model takes and returns; checksums),
``repository`` (entities as metadata-table items), ``lookup`` (the read side, all that
inference needs), ``service`` (the use cases: ``ModelRegistry``), ``registration``,
``policy``, ``model_card`` and ``events``.
"""
