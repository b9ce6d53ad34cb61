"""``seglab predict``: masks of images, folders and stacks from a trained model folder."""

from __future__ import annotations

import os
from pathlib import Path

from seglab.inference.files import collect_inputs, read_input, write_prediction
from seglab.inference.predict import Predictor, inference_device
from seglab.inference.settings import InferenceSettings
from seglab.inference.stacks import predict_stack
from seglab.models.io import load_model_folder
from seglab.pipeline.common import log, model_folder_of


def predict(
    model_path: str | os.PathLike,
    inputs: list[Path],
    out_dir: str | os.PathLike,
    probabilities: bool = False,
    with_overlays: bool = False,
    tta: bool = False,
    accelerator: str = "auto",
    cpu_precision: str | None = None,
) -> list[Path]:
    """Masks (and optionally probabilities, overlays) of images, folders and stacks.

    ``cpu_precision`` replaces the model folder's ``eval.cpu_precision`` (None keeps it).
    """
    folder = model_folder_of(model_path)
    device = inference_device(accelerator)
    model, meta = load_model_folder(folder, device)
    settings = InferenceSettings.from_meta(meta)
    settings = settings.with_(tta="dihedral") if tta else settings
    if cpu_precision is not None:
        settings = settings.with_(cpu_precision=cpu_precision)
    num_classes = int(meta.get("num_classes", meta["model"].get("num_classes", 1)))
    in_channels = int(meta.get("in_channels", meta["model"].get("in_channels", 1)))
    predictor = Predictor(model, meta["normalization"], settings, device, num_classes)
    log.info("forward passes on %s in %s", device.type, predictor.precision)
    files = collect_inputs([Path(p) for p in inputs])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for path in files:
        source = read_input(path, in_channels)
        labels, probs = predict_stack(predictor, source.image, settings, probabilities)
        files_out = write_prediction(source, out, labels, probs, num_classes, with_overlays)
        written += files_out
        kind = f"stack of {labels.shape[0]} slices" if source.is_stack else "image"
        log.info("%s (%s) -> %s", path.name, kind, files_out[0].name)
    log.info("%d input(s) predicted into %s", len(files), out)
    return written
