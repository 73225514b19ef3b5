"""Machine learning a plant can trust: features, root-cause classifier, anomaly detectors,
yield forecast and the MLflow registry.

Every model follows the scikit-learn estimator contract (hyperparameters in ``__init__``, ``fit``
returns ``self``, fitted attributes end in ``_``); resampling lives inside an imbalanced-learn
``Pipeline`` so it only ever touches training folds. Functions take and return DataFrames or
frozen result objects: no paths or connections inside.
"""
