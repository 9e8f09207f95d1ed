"""The ``context`` engine: labs in a learner's own namespaces on a shared cluster."""
