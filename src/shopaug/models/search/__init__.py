"""Search models: rank items for queries."""
