"""Traffic routing: which version answers a request, pure and without AWS.

``policy`` (what a model's routing policy may say: ``single``, ``split``, ``bandit``, each
with an optional ``shadow``; stored in the registry, validated here), ``split``
(deterministic weighted splits by a request key), ``bandit`` (Thompson sampling over
Beta posteriors, optionally discounted; reward updates; posterior summaries) and
``router`` (a policy and the arms' counts in, one ``Decision`` out). numpy and pydantic
only; imports ``registry.entities`` and ``errors``, never ``storage`` (import-linter).
"""
