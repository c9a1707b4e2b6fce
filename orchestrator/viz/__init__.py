"""The live web visualizer of a lab: nodes, tasks, the running demo, its reports."""
