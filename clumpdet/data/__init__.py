"""Readers, stretches, augmentation and datasets."""
