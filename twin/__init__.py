"""The world model (SimPy) and the reference services: lands with the model and stack issues."""
