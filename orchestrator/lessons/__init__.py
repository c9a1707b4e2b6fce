"""Lessons: each tutorial's command sequence, replayed and checked on a lab (lesson.ls, lesson.run).

model.py (the lesson files under templates/lessons/, loaded and validated), checks.py (what a
step's outcome must be, asked of the swarm through the docker SDK), runner.py (runs the steps
through the real docker CLI, shows and checks each, stops on the first that does not hold).
"""
