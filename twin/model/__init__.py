"""The world model: a pure SimPy discrete-event twin of stations, EVs and drivers."""
