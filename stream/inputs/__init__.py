"""Inputs and formats: order events read from files and exports, decoded at the edge, and
the messages the engine writes."""
