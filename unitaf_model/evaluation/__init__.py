"""Evaluation: the field's face metrics, scoring runs on a split, and the report's figures."""
