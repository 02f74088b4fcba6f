"""Training: model definitions, data generators and the training loops (TensorFlow/PyTorch; never imported on the glasses)."""
