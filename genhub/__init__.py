"""genhub: small image generative models (VAEs and GANs) that are Hugging Face Hub citizens."""

from genhub.data import DATASETS, DatasetError, ImageData, load_images
from genhub.images import grid_image, make_grid, to_pil
from genhub.models.classifier import DigitClassifier, load_evaluator
from genhub.models.gan import GenDCGAN, GenGAN, GenWGAN
from genhub.models.hub import GenModel, ModelLoadError, PushError, load_model, push_folder
from genhub.models.vae import GenVAE

__version__ = "0.1.0"

__all__ = [
    "DATASETS",
    "DatasetError",
    "DigitClassifier",
    "GenDCGAN",
    "GenGAN",
    "GenModel",
    "GenVAE",
    "GenWGAN",
    "ImageData",
    "ModelLoadError",
    "PushError",
    "grid_image",
    "load_evaluator",
    "load_images",
    "load_model",
    "make_grid",
    "push_folder",
    "to_pil",
]
