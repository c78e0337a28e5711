"""compress: model-compression research for small image classifiers.

Modules (one idea each): ``blocks``, ``models``, ``scaling``, ``profile``, ``data``, ``augment``,
``train``, ``quantize``, ``artifact``, ``sweep``, ``latency``, ``explain``, ``plots``, ``report``
and the ``compress`` command in ``cli``. Importing ``compress`` imports nothing heavy beyond torch.
"""

__version__ = "0.1.0"
