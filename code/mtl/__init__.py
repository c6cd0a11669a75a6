"""Multi-task fine-tuning for the Tianchi 2020 Chinese generalisation challenge (OCNLI, OCEMOTION, TNEWS)."""
