"""From raw inputs to a dataset: subspot layouts, image features, readers and assembly."""
