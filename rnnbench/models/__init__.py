"""Model kinds: what ``compare`` puts side by side, each a package here, registered once below.

- :mod:`.registry`: :class:`~.registry.ModelKind` and the lookup every other module uses.
- :mod:`.base`: the :class:`~.base.Model` protocol a kind's class satisfies.
- :mod:`.linear`: TF-IDF n-grams + logistic regression (ridge), grid-searched (scikit-learn).
- :mod:`.rnn`: GRU / LSTM / simple RNN (JAX + flax nnx), chunked backpropagation through time.
- :mod:`.fasttext`: fastText's bag of word and hashed n-gram embeddings into a linear layer (JAX).
- :mod:`.transformer`: a small pre-layer-norm Transformer encoder (JAX + flax nnx).
- :mod:`.jaxtrain`: what any JAX model reuses: the training loop, checkpoints, optimizers, losses.

Importing this package loads only the kinds' declarations (their config sections), never scikit-learn
or JAX. Adding a kind: its package with a ``spec.py``, one line below (docs/design/architecture.md).
"""

from .fasttext.spec import KIND as FASTTEXT
from .linear.spec import KIND as LINEAR
from .registry import ModelKind, check_names, get, kinds, names, register
from .rnn.spec import KIND as RNN
from .transformer.spec import KIND as TRANSFORMER

for _kind in (LINEAR, RNN, FASTTEXT, TRANSFORMER):
    register(_kind)

__all__ = ["ModelKind", "check_names", "get", "kinds", "names", "register"]
