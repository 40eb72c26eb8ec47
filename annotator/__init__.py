"""OV-SAM annotator: click or box → mask (SAM) + open-vocabulary label (CLIP), exported as COCO.

Never imports gradio: the UI lives in ``app/`` and only calls into this package.
"""

__version__ = "0.1.0"
