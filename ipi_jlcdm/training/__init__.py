"""Making a model: training geometries, reference data, the fit, validation against SCF."""
