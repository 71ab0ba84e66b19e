"""The base layer: what every other package may import (errors, spec reading, file writing)."""
