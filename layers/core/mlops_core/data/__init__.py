"""Datasets: the declared schema and CSV loading (``schema``), validation against the
schema and an expectations suite (``validation``), reference profiles (``profiles``) and
the column types shared with model signatures (``types``)."""
