"""Figures drawn from the layers' data, one module per family: the paper's Fig. 3 and
Fig. 4 (:mod:`~qkdnet.figures.skr_curves`) and the network map
(:mod:`~qkdnet.figures.network_map`). Only this package and the drivers import matplotlib."""
