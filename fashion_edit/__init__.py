"""Library of the fashion-editing pipeline: data, conditioning, training, metrics, tracking, registry."""
