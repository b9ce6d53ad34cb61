"""seglab: train, evaluate, compare and compress U-Net-family segmentation models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seglab")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
