"""tape-runner: config-driven experiments with TensorFlow's GradientTape."""

__version__ = "0.1.0"
