"""Property-based tests: every kernel against hrops.ref over random inputs."""
