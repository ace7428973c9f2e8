"""Analysis of MD output: IR spectra."""
