"""Validation."""
def validate(): pass
