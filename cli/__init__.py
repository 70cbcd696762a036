"""The `unitaf-data` and `unitaf` command lines (installed as `unitaf_cli`)."""
