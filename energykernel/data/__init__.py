"""Run records as xarray Datasets: the cube, the runs, the timeline, NetCDF I/O, ``ds.ek``."""
