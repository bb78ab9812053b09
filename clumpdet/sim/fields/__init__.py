"""Blended-field simulator (stars and galaxies in survey tiles): ``config`` (FieldSimConfig),
``scene`` (one field with exact truth and masks), ``writer`` (FITS + COCO + objects.csv)."""
