"""Retention KPIs and the report built from a replay's customers."""
