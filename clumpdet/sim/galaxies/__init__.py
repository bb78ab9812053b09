"""Galaxy-classification simulators (mergers, four_class, morphology): ``config`` (one config per
task), ``components`` (parameter draws), ``render`` (analytic profiles, PSFs, noise), ``votes``
(synthetic Galaxy Zoo / CANDELS labels), ``scene`` (one labelled image), ``writer``
(images.npy + labels.csv + params.csv)."""
