"""The embedded local stack: the deployed stack's resources, functions and routes on moto."""
