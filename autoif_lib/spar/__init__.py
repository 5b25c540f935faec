"""SPaR (arXiv 2412.11605): actor and refiner self-play with tree-search refinement."""
