"""`ppipe predict`: top-k labels of images from a published model, as PaddleClas's `tools/infer.py` prints them.

    from ppipe.predict import predict_images
    predict_images("resnet50@production", ["cat.jpg", "photos/"], topk=5, store="s3://zoo")
    # [{"image": "cat.jpg", "topk": [{"class_id": 281, "label": "n02123045", "score": 0.91}, ...]}, ...]

The model is a reference into the artifact store (pulled, every checksum verified, into a temporary folder), or
a local folder: a pulled artifact, a run folder, or an export target folder. Its preprocessing (the eval
transform ops) and class names come from the artifact's lineage (`ppipe.lineage`), else from the `config.yaml`
beside it. The network is the folder's Paddle Inference model (`inference/`, or the folder itself) run by
`ppipe.inference.create_predictor`, which applies its `predictor.json`; a folder with only `model.pdparams`
(weights, loaded with the safe loader) runs the dygraph model its manifest or config names. Scores are the
softmax of the logits. An image that cannot be read or decoded is reported with an "error" naming it, and the
others are still predicted.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ppipe.errors import UserError
from ppipe.storage import read_json_mapping

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm")


@dataclass(frozen=True)
class LoadedModel:
    """What predicting needs: logits of a float32 [1, C, H, W] batch, the preprocessing, the class names."""

    run: Callable[[np.ndarray], np.ndarray]
    preprocess: Callable[[bytes], np.ndarray]
    class_names: list[str]
    source: str


def _find_config(folder: str) -> str | None:
    """The `config.yaml` of an artifact or run folder, or of the run folder an export folder sits in."""
    for candidate in (folder, os.path.dirname(folder), os.path.dirname(os.path.dirname(folder))):
        path = os.path.join(candidate, "config.yaml")
        if os.path.isfile(path):
            return path
    return None


def _description(folder: str) -> tuple[list | None, list[str], str | None, int | None]:
    """(preprocessing ops, class names, architecture, num_classes) from the manifest's lineage, else the config."""
    manifest = read_json_mapping(os.path.join(folder, "manifest.json"))
    lineage, metadata = manifest.get("lineage") or {}, manifest.get("metadata") or {}
    ops, names = lineage.get("preprocessing"), list(lineage.get("class_names") or [])
    arch, num_classes = metadata.get("model"), metadata.get("num_classes")
    config_path = _find_config(folder)
    if (ops is None or arch is None) and config_path:
        from ppipe.build import infer_arch
        from ppipe.config import load_config
        from ppipe.evaluate import eval_transform_ops

        cfg = load_config(config_path)
        ops = ops if ops is not None else eval_transform_ops(cfg)
        if arch is None:
            arch, num_classes = infer_arch(cfg).name, infer_arch(cfg).num_classes
    if ops is None:
        raise UserError(f"{folder}: no preprocessing recorded (no manifest lineage and no config.yaml beside it); "
                        "pass a pulled artifact, a run folder, or an export folder inside one")
    return ops, names, arch, num_classes


def _inference_folder(folder: str) -> str | None:
    for candidate in (os.path.join(folder, "inference"), folder):
        if any(os.path.isfile(os.path.join(candidate, f)) for f in ("model.json", "model.pdmodel")):
            return candidate
    return None


def load_model(folder: str) -> LoadedModel:
    """The model in a local folder (see the module docstring)."""
    from ppipe.data import create_operators

    folder = os.path.abspath(folder)
    ops, names, arch, num_classes = _description(folder)
    inference = _inference_folder(folder)
    if inference is not None:
        from ppipe.inference import create_predictor, predict

        predictor = create_predictor(inference)
        return LoadedModel(lambda x: predict(predictor, x), create_operators(ops), names, inference)
    weights = os.path.join(folder, "model.pdparams")
    if not os.path.isfile(weights) or not arch:
        raise UserError(f"{folder}: neither an inference model (inference/model.json) nor model.pdparams with its "
                        "architecture")
    import paddle

    from ppipe.models import create_model

    model = create_model(arch, num_classes=int(num_classes or 1000), pretrained=weights)  # the safe loader
    model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return model(paddle.to_tensor(x)).numpy()

    return LoadedModel(run, create_operators(ops), names, weights)


def image_paths(inputs: list[str]) -> list[str]:
    """Files named, and the image files (by suffix, sorted) directly inside folders named; a missing input is a
    UserError naming it."""
    out: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            out += sorted(os.path.join(item, n) for n in os.listdir(item)
                          if n.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(item, n)))
        elif os.path.isfile(item):
            out.append(item)
        else:
            raise UserError(f"image or folder not found: {item}")
    if not out:
        raise UserError(f"no images in {', '.join(inputs)} (suffixes: {', '.join(IMAGE_SUFFIXES)})")
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max()
    e = np.exp(z)
    return e / e.sum()


def predict_one(model: LoadedModel, path: str, topk: int) -> dict[str, Any]:
    """{"image", "topk": [...]} for one image, or {"image", "error"} when it cannot be read or decoded."""
    try:
        with open(path, "rb") as f:
            chw = np.asarray(model.preprocess(f.read()), dtype="float32")
    except Exception as e:  # noqa: BLE001 - any failure on this file's bytes is this file's error
        return {"image": path, "error": f"cannot read {path} as an image: {type(e).__name__}: {e}"}
    scores = _softmax(np.asarray(model.run(chw[None]))[0].astype("float64"))
    best = np.argsort(-scores, kind="stable")[:topk]
    return {"image": path, "topk": [
        {"class_id": int(i), "label": model.class_names[i] if i < len(model.class_names) else str(int(i)),
         "score": float(scores[i])} for i in best]}


def predict_images(source: str, inputs: list[str], *, topk: int = 5, store: str | None = None) -> list[dict]:
    """Top-`topk` predictions for every image in `inputs` (files or folders) by the model `source`: a local
    folder, else an artifact reference (``NAME``, ``NAME:vN``, ``NAME@ALIAS``) in `store`."""
    if topk < 1:
        raise UserError(f"--topk must be at least 1, got {topk}")
    paths = image_paths(list(inputs))
    if os.path.isdir(source):
        model = load_model(source)
        return [predict_one(model, p, topk) for p in paths]
    if os.sep in source or os.path.exists(source):
        raise UserError(f"model folder not found: {source} (expected a folder, or NAME, NAME:vN, NAME@ALIAS)")
    from ppipe.artifacts import ArtifactStore

    with tempfile.TemporaryDirectory(prefix="ppipe-predict-") as tmp:
        folder = os.path.join(tmp, "artifact")
        ArtifactStore(store).pull(source, folder)
        model = load_model(folder)
        return [predict_one(model, p, topk) for p in paths]
