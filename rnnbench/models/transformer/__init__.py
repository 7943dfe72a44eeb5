"""The Transformer encoder model kind (JAX + flax nnx): pre-layer-norm blocks of self-attention
(``jax.nn.dot_product_attention``) over a text's tokens and their positions, pooled into a head.
:mod:`.spec` (its options, registered), :mod:`.model` (the module and the
:class:`~rnnbench.models.base.Model`). The loop and checkpoints are :mod:`rnnbench.models.jaxtrain`'s.
Importing this package loads nothing heavy."""
