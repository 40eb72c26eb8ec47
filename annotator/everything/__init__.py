"""Everything mode: segment and label a whole image.

- :mod:`.patches`: SAM patches from a point grid (fast automatic mask generation).
- :mod:`.regions`: per-patch SAM / CLIP region features and patch geometry.
- :mod:`.affinity`: SAM-CP's affinity decoder interface (queries × patches), training-free.
- :mod:`.samcp`: the SAM-CP pass (Prompt I labelling, Prompt II instance merging).
- :mod:`.possam`: the PosSAM pass (masks + predicted IoU, MASE classification).
- :mod:`.panoptic`: instances → a non-overlapping panoptic segmentation.
- :mod:`.pipeline`: one run of the above (:func:`~.pipeline.run_everything`).
"""
