"""The local engine: the Kubernetes networking data plane rebuilt from real Linux parts."""
