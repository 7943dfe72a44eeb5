"""The talk's baseline: TF-IDF over word n-grams + logistic regression (ridge for targets), grid-searched
on validation. :mod:`.spec` (its options, registered), :mod:`.model` (the estimator), :mod:`.ngrams` (the
n-gram counter), :mod:`.shared_csr` (feature matrices shared with the grid's worker processes)."""
