"""What happens after a prediction: the prediction log (``prediction_log``: every captured
prediction, by id, with a TTL, and the feedback recorded on it) and the bulk capture in S3
(``capture_store``), written by the capture function from the lines the inference function
logs (``serving.capture``); feedback on predictions (``service``: what ``POST /feedback``
records, from ``requests``, comparing labels with a model's classes by ``labels``). Bandit
rewards build on the same log."""
