"""The kind engine: real Kubernetes in Docker, driven through the kind and kubectl CLIs."""

from clusters.kind.cli import KindCLI

__all__ = ["KindCLI"]
