"""The fastText-style model kind (Joulin et al. 2016, "Bag of Tricks for Efficient Text Classification"):
the mean of the embeddings of a text's words and hashed word n-grams into a linear layer (JAX + flax nnx).
:mod:`.spec` (its options, registered), :mod:`.model` (the module, its sparse training step and the
:class:`~rnnbench.models.base.Model`). The loop and checkpoints are :mod:`rnnbench.models.jaxtrain`'s.
Importing this package loads nothing heavy."""
