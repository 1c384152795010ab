"""Real-time serving: request rows into the model's input matrix (``instances``), ONNX
sessions checked against their signature (``sessions``), and the ``Predictor`` that
resolves aliases and keeps loaded versions (``predictor``). numpy and onnxruntime only:
never scipy or scikit-learn, never the training package (import-linter)."""
