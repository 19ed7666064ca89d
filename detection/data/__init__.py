"""AVA data: annotations, video decoding, clip sampling, transforms, datasets."""
