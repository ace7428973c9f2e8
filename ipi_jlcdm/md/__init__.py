"""The MD interface: the i-PI socket protocol and driver loop, running i-PI, the PES plug-in, the demo."""
