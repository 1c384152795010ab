"""The retraining loop: a ``DriftDetected`` event becomes a training run on captured
predictions joined with their feedback labels (``service``), when the model's monitoring
configuration switches it on. Above the domains it joins (feedback's bulk capture,
monitoring's configuration, training's request and workflow) in the layers contract."""
