"""What happens after a prediction: the prediction log (``prediction_log``: every captured
prediction, by id, with a TTL) and the bulk capture in S3 (``capture_store``), written by
the capture function from the lines the inference function logs (``serving.capture``).
Feedback and bandit rewards build on the same log."""
