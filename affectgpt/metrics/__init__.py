"""Evaluation metrics with official parity: emotion-wheel tables (wheel), EW-based M1/M2/M3 (ew),
MER-UniBench scores (unibench), result-file loading (io) and printable tables (report)."""
