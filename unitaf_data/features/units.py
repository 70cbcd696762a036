"""Discrete speech units: k-means over Whisper encoder states (a label-based tokenizer in
the spirit of arXiv 2606.13630), learned from a seeded sample of the train split."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from unitaf_data.dataset import DatasetLayout, Location, check_feature_folder, write_json


def fit_centroids(states: list[np.ndarray], k: int, seed: int) -> np.ndarray:
    """k centroids (k, D) float32 from the frames of `states` (mini-batch k-means)."""
    from sklearn.cluster import MiniBatchKMeans

    frames = np.concatenate(states).astype(np.float32)
    if len(frames) < k:
        raise ValueError(f"{len(frames)} frames cannot make {k} units: lower --k or add clips")
    kmeans = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=4096, n_init=3,
                             max_iter=100)
    kmeans.fit(frames)
    return kmeans.cluster_centers_.astype(np.float32)


def nearest(states: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of every frame."""
    distances = (np.square(states).sum(1, keepdims=True) - 2 * states @ centroids.T
                 + np.square(centroids).sum(1)[None])
    return distances.argmin(1)


CENTROIDS_KEY = "features/units/centroids.npy"
FIT_KEY = "features/units/fit.json"


def centroids_location(dataset_dir: Path | str) -> Location:
    """The fitted centroids of a dataset, in its storage (a folder or a URL)."""
    return DatasetLayout(dataset_dir).store / CENTROIDS_KEY


def save_centroids(dataset_dir: Path | str, centroids: np.ndarray, info: dict) -> Location:
    layout = DatasetLayout(dataset_dir)
    check_feature_folder(layout, "units", claim=True)  # a local folder is claimed
    where = layout.store / CENTROIDS_KEY
    where.write_bytes(npy_bytes(centroids))
    write_json(where.storage / FIT_KEY, info)
    return where


def load_centroids(dataset_dir: Path | str) -> np.ndarray:
    """The fitted (k, D) float32 centroids (checked: a file from elsewhere may be anything)."""
    return load_centroids_with_hash(dataset_dir)[0]


def load_centroids_with_hash(dataset_dir: Path | str) -> tuple[np.ndarray, str]:
    """The centroids and the sha256 of the very bytes they were read from."""
    where = centroids_location(dataset_dir)
    if not where.exists():
        raise FileNotFoundError(f"{where} not found: run `unitaf-data fit-units "
                                f"{dataset_dir}` first")
    data = where.read_bytes()
    try:
        centroids = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"{where}: not a .npy array ({error})") from None
    if centroids.dtype != np.float32 or centroids.ndim != 2 or not len(centroids) \
            or not np.isfinite(centroids).all():
        raise ValueError(f"{where}: not a (k, D) float32 array of finite centroids")
    return centroids, hashlib.sha256(data).hexdigest()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
