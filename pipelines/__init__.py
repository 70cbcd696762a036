"""Distributed runs of the `unitaf_data` stages on Ray (installed as `unitaf_pipelines`)."""
