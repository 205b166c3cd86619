"""Inference: checkpoint -> model (runner), batched resumable generation (generate), result files (outputs),
single-clip answers (clip). infer.py is the command-line front end."""
