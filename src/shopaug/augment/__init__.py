"""Augmenters: components that add synthetic rows (with provenance) to a bundle."""
