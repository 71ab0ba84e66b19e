"""trainwell: train neural networks well."""
