"""Simple baselines on the same split, so each model's accuracy has a reference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def tfidf_logreg(train_texts: Sequence[str], y_train: np.ndarray, test_texts: Sequence[str],
                 y_test: np.ndarray, seed: int = 42) -> dict[str, Any]:
    """TF-IDF (word 1-2 grams) + logistic regression test accuracy."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    features = vectorizer.fit_transform(train_texts)
    clf = LogisticRegression(max_iter=2000, C=4.0, random_state=seed)
    clf.fit(features, y_train)
    accuracy = float((clf.predict(vectorizer.transform(test_texts)) == y_test).mean())
    return {"name": "tfidf_logreg", "description": "TF-IDF word 1-2 grams + logistic "
            "regression, same split", "test_accuracy": round(accuracy, 4)}


def pixel_logreg(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, seed: int = 42, side: int = 30) -> dict[str, Any]:
    """Logistic regression on downscaled grayscale pixels (side x side), same split."""
    from sklearn.linear_model import LogisticRegression

    side = min(side, *x_train.shape[1:3])
    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(_downscale(x_train, side), y_train)
    accuracy = float((clf.predict(_downscale(x_test, side)) == y_test).mean())
    return {"name": "pixel_logreg", "description": f"logistic regression on {side}x{side} "
            "grayscale pixels, same split", "test_accuracy": round(accuracy, 4)}


def _downscale(images: np.ndarray, side: int) -> np.ndarray:
    """(n, h, w, 3) → (n, side*side) by block means (crops the remainder)."""
    n, h, w, _ = images.shape
    side = min(side, h, w)
    fy, fx = max(1, h // side), max(1, w // side)
    gray = images[:, : fy * side, : fx * side, :].mean(axis=3)
    return gray.reshape(n, side, fy, side, fx).mean(axis=(2, 4)).reshape(n, side * side)
