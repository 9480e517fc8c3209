"""irnlib: a reproducibility kit for Invertible Image Rescaling (Xiao et al., ECCV 2020)."""

from irnlib.imaging.imresize import imresize
from irnlib.model.checkpoint import CheckpointError, load_checkpoint, save_model
from irnlib.model.network import IRN, quantize

__all__ = ["IRN", "load_checkpoint", "save_model", "quantize", "imresize", "CheckpointError"]
__version__ = "0.1.0"
