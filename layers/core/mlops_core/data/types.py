"""The column types a dataset, a feature view and a model signature share."""

from typing import Literal

FeatureType = Literal["double", "float", "integer", "boolean"]
