"""Clumpy-galaxy simulator: ``config`` (ClumpSimConfig), ``scene`` (one GalSim scene with exact
truth), ``writer`` (FITS + COCO + labels.csv data sets)."""
