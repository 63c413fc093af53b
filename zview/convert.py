"""Conversion of an edflow folder (or any store) into a zview store."""
def convert(): pass
