"""Example jobs (the *.toml / *.json files here, shipped as package data) and the callables they run."""
