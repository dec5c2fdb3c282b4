"""Data: label set, synthetic figures, source readers, conditioning, prepared-array store, datasets."""
