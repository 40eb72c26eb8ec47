"""Everything mode: segment and label a whole image.

- :mod:`.patches`: SAM patches from a point grid (fast automatic mask generation).
"""
