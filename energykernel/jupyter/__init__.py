"""The notebook layer: magics and cell machinery, display, the notebook runner, widgets."""
