"""Drift monitoring: statistics (numpy only), comparisons of a window with the reference
profile, and streaming detectors of concept drift. Runs on the core layer alone."""
