"""Discrete speech units: k-means over Whisper encoder states (a label-based tokenizer in
the spirit of arXiv 2606.13630), learned from a seeded sample of the train split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unitaf_data.dataset import DatasetLayout, check_feature_folder, write_json


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


def centroids_path(dataset_dir: Path) -> Path:
    return DatasetLayout(dataset_dir).units / "centroids.npy"


def save_centroids(dataset_dir: Path, centroids: np.ndarray, info: dict) -> Path:
    path = centroids_path(dataset_dir)
    check_feature_folder(DatasetLayout(dataset_dir), "units", claim=True)
    np.save(path, centroids, allow_pickle=False)
    write_json(path.with_name("fit.json"), info)
    return path


def load_centroids(dataset_dir: Path) -> np.ndarray:
    """The fitted (k, D) float32 centroids (checked: a file from elsewhere may be anything)."""
    path = centroids_path(dataset_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `unitaf-data fit-units "
                                f"{dataset_dir}` first")
    centroids = np.load(path, allow_pickle=False)
    if centroids.dtype != np.float32 or centroids.ndim != 2 or not len(centroids) \
            or not np.isfinite(centroids).all():
        raise ValueError(f"{path}: not a (k, D) float32 array of finite centroids")
    return centroids
