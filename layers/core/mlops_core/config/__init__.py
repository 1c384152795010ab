"""Configuration read from the environment (``settings``) and observability helpers
(``observability``: a tracer that costs nothing when tracing is off, error metrics)."""
