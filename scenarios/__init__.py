"""The bundled scenario files (TOML), shipped as package data of ``chargetwin.scenarios``."""
