"""Guarded rollouts (what SageMaker calls deployment guardrails): traffic moves from the
production version to a candidate in steps, each step baked and judged against
guardrails, then the candidate is promoted or everything is rolled back.

``entities`` (the request, the guardrails and the record a rollout keeps; pure),
``guardrails`` (a step's verdict from two versions' totals; pure), ``events``,
``repository`` (the rollout records and the one-rollout-at-a-time marker) and ``service``
(the use cases the API and the workflow's steps call).
"""
