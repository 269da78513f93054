"""Files on disk: scenario and twin documents read, networks saved, exports written. The
layers turn text into models and back; only this package (and the drivers) opens files."""
