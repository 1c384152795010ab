"""Training: the workflow's input (``requests``), its state between steps (``state``), the
steps themselves (``steps``), estimator families and their hyper-parameters
(``estimators``), metrics, splits, ONNX export, run tracking and events.

scikit-learn and skl2onnx are imported inside the steps that fit and export (the
``science`` layer); everything else runs on the core layer.
"""
