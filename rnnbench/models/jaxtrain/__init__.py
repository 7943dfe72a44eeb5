"""What every JAX model kind reuses: the training loop (epochs, validation, early stopping, EMA, the
divergence rule, progress, SIGTERM), orbax checkpoints with bit-exact resume, optimizers and losses, and
the compile cache. A model supplies its parameters and its train and evaluation steps
(:class:`~.loop.Trainable`) and gets the rest. Importing this package loads nothing heavy."""
