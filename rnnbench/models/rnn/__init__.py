"""The GRU / LSTM / simple RNN model kind (JAX + flax nnx).

:mod:`.spec` (its options, registered), :mod:`.model` (the flax module), :mod:`.cells` (the recurrences and
their backward passes; :mod:`.native` and ``gru_cpu.cc``, the GRU's CPU kernels), :mod:`.batching` (length
buckets), :mod:`.train` (its compiled programs: chunked backpropagation through time), :mod:`.model_api`
(the :class:`~rnnbench.models.base.Model` the run machinery uses). The training loop and checkpoints are
:mod:`rnnbench.models.jaxtrain`'s, shared with any JAX model. Importing this package loads nothing heavy.
"""
