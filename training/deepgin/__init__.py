"""DeepGIN (Li et al., "DeepGIN: Deep Generative Inpainting Network for Extreme Image Inpainting",
ECCV 2020 workshops / AIM 2020): a second model family beside LaMa."""
