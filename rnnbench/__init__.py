"""rnnbench: should this text problem get a linear model or an RNN?"""

__version__ = "0.1.0"
