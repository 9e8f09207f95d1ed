"""kube-netlab's course layer: the ``lab`` CLI, the lab catalogue, the learner's workspace
and progress, and the lab content folders ``labs/NN-slug/``.

Import what you need from the modules (``labs.catalogue``, ``labs.workspace``,
``labs.progress``); this package module stays empty so that importing it is cheap.
"""
